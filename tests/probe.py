"""A stage that only reports where its task ran: the device it was handed (through `on_gpu`, where a scheduler gave
the task a GPU), the worker process, torch's thread count there, and when. It travels to workers by value where
they cannot import tests/ (Spark executors)."""

from __future__ import annotations

import os
import time

import pyarrow as pa

from transforms.stages.base import BatchStage, Resources, StageConfig


class ProbeConfig(StageConfig):
    device: str = "auto"
    seconds: float = 0.5  # each task's time on its device, long enough for tasks to overlap


class Probe(BatchStage):
    name = "probe"
    Config = ProbeConfig
    writes = (pa.field("device", pa.string()), pa.field("pid", pa.int64()), pa.field("threads", pa.int64()),
              pa.field("started", pa.float64()), pa.field("ended", pa.float64()))

    @property
    def resources(self) -> Resources:
        return Resources(gpu=self.config.device != "cpu")

    def on_gpu(self, address: str) -> Probe:
        return Probe(self.config.model_copy(update={"device": f"cuda:{address}"}))

    def annotate(self, table: pa.Table) -> pa.Table:
        import torch

        started = time.time()
        time.sleep(self.config.seconds)
        values = [self.config.device, os.getpid(), torch.get_num_threads(), started, time.time()]
        return pa.table([pa.repeat(v, table.num_rows) for v in values], schema=pa.schema(self.writes))
