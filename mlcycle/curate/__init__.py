"""Curation verbs: merge, filter, remap, split, rebalance, diff, dedupe (docs/curate.md,
docs/curate-diff.md).

One module per verb, each with typed functions that take a label table (or paths, for
the streaming variants) and return a ``mlcycle.results.Result``:

- ``merge.merge_tables`` / ``merge.merge_files``     several tables into one
- ``filter.filter_table`` / ``filter.filter_files``   rows by a safe expression
  (``expression.compile_expression``)
- ``remap.remap_labels`` / ``remap.load_mapping``     rename, merge or drop classes
- ``split.split_table``                                train/val/test, stratified, grouped
- ``rebalance.rebalance_table``                        toward a class distribution
- ``diff.diff``                                        what changed between two versions
- ``dedupe.dedupe``                                    duplicate and leaking images

Modules are imported on use (``from mlcycle.curate.diff import diff``); nothing heavy
is imported here.
"""
