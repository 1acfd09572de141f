"""Batch jobs that matte a folder of targets: the single-process engine and the Ray engine (optional extra).

``storage`` reads targets and writes outputs (local folders, or pyarrow file systems for the Ray engine), ``plan``
names outputs and groups targets into U-Net batches, ``job`` mattes one planned batch and sums up a run;
``ray_engine`` spreads the planned batches over a Ray cluster. Only ``ray_engine`` imports Ray.
"""
