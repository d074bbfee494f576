"""The machinery of scripts/gen_docs.py: the generated parts of the docs.

No figure in the docs or the README is typed by hand: every table of a run's results and every
measured figure is rendered here from committed artifacts (run folders under reports/, the
benchmark records in benchmarks/results/), and tests/test_docs.py fails when a generated part
is stale.

Whole pages (each starts with `docgen.markdown.HEADER`):

- docs/reference/config.md: from the config's JSON Schema (harness/config/schema.py, every
  property's `description`) and the defaults of its dataclasses (harness/config/types.py);
- docs/reference/cli.md: every subcommand of `harness.cli.build_parser()` with its `--help`;
- docs/reference/api.md: the public functions of `harness.api` and `harness.testing`;
- docs/measurements.md: the benchmark records, the latest first, with their history;
- docs/changelog.md: a copy of CHANGELOG.md.

Blocks inside README.md and docs/**/*.md, between a marker line and its end line:

    <!-- generated: arms reports/example -->
    <!-- end generated -->

with the kinds `arms RUN_DIR` (the run's arms table, verdict and provenance), `side-by-side
RUN_A RUN_B` (two runs of one eval compared: verdict, examples, requests, wall time) and
`measurements` (the latest benchmark figures, compact). Markers inside fenced code blocks are
text, not markers. The output is deterministic: fixed widths (argparse at 100 columns), sorted
records, no time of generation.

The modules, each answering one question:

- `markdown`: how a part is written (tables, the page header, number and date formats, the
  error `DocsError`);
- `config_reference`: what a config can say (docs/reference/config.md);
- `code_reference`: what the command line and the Python API accept (docs/reference/cli.md,
  docs/reference/api.md);
- `measurements`: what the benchmarks measured (docs/measurements.md, the `measurements` block);
- `changelog`: how CHANGELOG.md reads on the site (docs/changelog.md);
- `runs`: what the committed run folders say (the `arms` and `side-by-side` blocks);
- `blocks`: where the generated blocks of a page are, and filling them;
- `generated`: which files the generator owns or fills, what they should read, which are stale;
- `links`: whether the `reports/...` paths the docs name exist.
"""
