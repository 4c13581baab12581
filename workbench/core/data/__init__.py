"""The data layer: every SQL statement of the workbench lives in `store.py` (transactions),
`migrations.py` (the schema) or the modules below, so a change of table touches one place and the
rest of the code reads typed rows instead of composing queries.

- `names.py`: run statuses and metric names shared by every layer; `records.py`: `Run`
  (no SQL in either);
- `runs.py`: runs, their per-step metrics, probe answers, preferences and chat logs;
- `knowledge.py`: knowledge sets and facts;
- `phrasings.py`: phrasings and probes, the base model's answers, scorecard answers.

`tests/test_data_layer.py` fails when SQL appears anywhere else.
"""
