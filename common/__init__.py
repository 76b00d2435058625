"""Reward and policy primitives shared by the papers (device-agnostic)."""
