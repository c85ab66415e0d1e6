"""The ingest's stages, one module each, in the order pipeline.py runs them:

scan (`scan.py`) → plan (`plan.make_plan`, pure) → shards (`shards.py`, over a `transport.py`) → merge, gate,
publish (`finish.py`). Each returns a typed result (ScanResult, ShardsResult, MergeGateResult) that the
pipeline hands to the RunReport; the verdicts on split files are `verdicts.py`, the run's notes on accepted
oddities `notes.py`, its scratch folder `shardmerge.scratch`."""
