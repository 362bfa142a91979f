"""The study pipeline: params validation, notebook runner, run layout and report helpers."""
