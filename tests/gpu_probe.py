"""A stage that only says where it ran: the GPU its task was given (the device it was handed through `on_gpu`), and
when. Shipped to Spark workers by value (it lives in tests/, which workers cannot import)."""

from __future__ import annotations

import time

import pyarrow as pa

from transforms.stages.base import BatchStage, Resources, StageConfig


class GpuProbeConfig(StageConfig):
    device: str = "auto"
    seconds: float = 0.5  # each task's time on its device, long enough for tasks to overlap


class GpuProbe(BatchStage):
    name = "gpu_probe"
    Config = GpuProbeConfig
    writes = (pa.field("device", pa.string()), pa.field("started", pa.float64()), pa.field("ended", pa.float64()))

    @property
    def resources(self) -> Resources:
        return Resources(gpu=self.config.device != "cpu")

    def on_gpu(self, address: str) -> GpuProbe:
        return GpuProbe(self.config.model_copy(update={"device": f"cuda:{address}"}))

    def annotate(self, table: pa.Table) -> pa.Table:
        started = time.time()
        time.sleep(self.config.seconds)
        n = table.num_rows
        return pa.table({"device": [self.config.device] * n, "started": [started] * n, "ended": [time.time()] * n},
                        schema=pa.schema(self.writes))
