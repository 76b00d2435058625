"""Real datasets for the `full` presets, read through Hugging Face `datasets`.

`core.load_any` opens a hub id, a `DatasetDict.save_to_disk` folder, or a local parquet / json / jsonl / csv file the
same way; one module per family of schemas maps the papers' datasets onto the project's internal rows
(see each module's docstring for the layouts it accepts).
"""
