"""Which representation works for a dataset: comparisons of representations on shared splits.

`run.compare` embeds a dataset with every representation (through the embedding store), fits
those learned from the data on each split's training clips, cross-validates every classifier of
`classifiers.CLASSIFIERS` on every representation over the same splits, and tests each against
the hand-crafted baseline (`metrics`: accuracy with bootstrap intervals, per-class scores,
McNemar's test). `result.ComparisonResult` holds what was measured; `discussion` words the
verdict from those numbers; `report.write_report` writes index.html, report.md, metrics.json,
predictions.csv and timings.json; `demo` is what `make demo` runs. `config.CompareConfig` says
what to compare and `settings` reads the command line's NAME.SETTING=VALUE overrides.
"""
