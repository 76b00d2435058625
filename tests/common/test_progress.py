from reprozoo.common.progress import track


def test_track_yields_everything_and_reports_plainly_off_a_terminal(monkeypatch, capsys):
    monkeypatch.delenv("REPROZOO_QUIET", raising=False)
    assert list(track(iter(range(20)), "work", total=20)) == list(range(20))
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("work: 1/20") and err[-1].startswith("work: 20/20") and len(err) == 11


def test_track_is_silent_when_quiet(monkeypatch, capsys):
    monkeypatch.setenv("REPROZOO_QUIET", "1")
    assert list(track([1, 2], "x")) == [1, 2]
    assert capsys.readouterr().err == ""
