"""Stage glue: turn the validated config into explicit arguments of the stage cores, print summaries.

One module a stage, each with ``main(cfg, out) -> exit code``. The cores live in ``sampling/``,
``pipeline/fetch`` and ``export/`` and never see the config object.
"""
