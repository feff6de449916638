"""What a benchmark run stands on: its work folder, the network, the S3 server, the emulator.

`BenchContext` owns them through one ExitStack: whatever was started is stopped, in reverse
order, when the run ends, fails or is interrupted (SIGTERM included), and the work folder
goes last, once nothing runs in it.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Self

from preheat import aws
from preheat.tools.bench import initlimit, network
from preheat.tools.bench.records import NetworkInfo
from preheat.tools.bench.strategies import Context
from preheat.tools.emulator.resources import (
    CoreSplit,
    available_cpus,
    format_cpus,
    lambda_vcpus,
    split_cores,
)

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client

    from preheat.artifact.manifest import Manifest
    from preheat.tools.bench.runner import Options
    from preheat.tools.emulator import Emulator, FunctionConfig
    from preheat.tools.local.s3 import S3Process

Say = Callable[[str], None]
BUCKET = "preheat-bench"
# The longest INIT any rule allows (see initlimit.py): what a client waits for at most.
INIT_TIMEOUT_S = initlimit.LIFTED_INIT_TIMEOUT_S
FUNCTION_TIMEOUT_S = 300.0


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every `finally` cleans up (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def start_network(opts: Options, stack: contextlib.ExitStack, say: Say) -> tuple[
    network.ShapedNetwork | None, NetworkInfo
]:  # fmt: skip
    if opts.network == "loopback":
        return None, NetworkInfo("loopback", False)
    try:
        net = stack.enter_context(network.ShapedNetwork(opts.bandwidth_mbit))
        measured = network.measure_mbit(net)
    except network.NetworkSetupError as exc:
        say(f"network: could not shape ({exc}); running unshaped on loopback")
        return None, NetworkInfo("lambda", False, opts.bandwidth_mbit, None, str(exc))
    say(f"network: S3 behind {opts.bandwidth_mbit:g} Mbit/s, measured {measured:.0f} Mbit/s")
    return net, NetworkInfo("lambda", True, opts.bandwidth_mbit, round(measured, 1))


def split_cores_for(memory_mb: int, say: Say) -> CoreSplit:
    """S3 on the last core, the functions on the others; all cores when the function's
    share needs them (then S3's work competes with the function's, and this says so)."""
    split = split_cores(1)
    if split.disjoint and lambda_vcpus(memory_mb) > len(split.functions):
        say(f"resources: {memory_mb} MB needs {lambda_vcpus(memory_mb):.2f} vCPUs; the "
            "functions get every core, the S3 server's included")  # fmt: skip
        return CoreSplit(split.server, available_cpus())
    if not split.disjoint:
        say("resources: one core only: the S3 server and the functions share it")
    return split


def lambda_client(endpoint: str, pool: int) -> LambdaClient:
    from preheat.tools.local.s3 import DUMMY_KEY_ID, DUMMY_SECRET, REGION

    client: LambdaClient = aws.client(
        "lambda",
        endpoint_url=endpoint,
        credentials=(DUMMY_KEY_ID, DUMMY_SECRET),
        region=REGION,
        # One attempt: a retried invoke would hide a failure and pay a second INIT.
        retries=aws.NO_RETRIES,
        read_timeout=INIT_TIMEOUT_S + FUNCTION_TIMEOUT_S,
        connect_timeout=10,
        pool=max(pool, 10),
    )
    return client


@dataclass(frozen=True)
class SourceModel:
    """The model every strategy ships: its SavedModel, its name and what push makes of it."""

    path: Path
    name: str
    manifest: Manifest


class BenchContext:
    """The run's surroundings, started in order and stopped by one ExitStack.

    Use as `with BenchContext(opts, work, say) as ctx:`, then `model()`, `start_s3()`,
    `strategy_context(...)` and, when there is something to measure, `start_emulator(...)`.
    """

    def __init__(self, opts: Options, work: Path, say: Say) -> None:
        self.opts = opts
        self.work = work
        self.say = say
        self._stack = contextlib.ExitStack()
        self.network_info = NetworkInfo(opts.network, False)
        self.cores: CoreSplit | None = None
        self.s3: S3Client | None = None
        self._s3_process: S3Process | None = None
        self.emulator: Emulator | None = None
        # What each environment ran under (CPU quota, memory limit, cores) and where S3 ran.
        self.resources: dict[str, Any] = {}
        # Each TensorFlow environment's versions against what pip gives (environments.py).
        self.environments: dict[str, Any] = {}

    def __enter__(self) -> Self:
        self._stack.enter_context(terminate_as_interrupt())
        if not self.opts.keep_work:
            self._stack.callback(shutil.rmtree, self.work, True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.__exit__(exc_type, exc, tb)

    def model(self) -> SourceModel:
        """The source SavedModel (the user's, or a sample made once) and its push manifest."""
        from preheat.tools.push import prepare as describe

        opts = self.opts
        if opts.model is not None:
            path = Path(opts.model).resolve()
            name = re.sub(r"[^A-Za-z0-9._-]", "-", path.name).strip("-.") or "model"
            name = name[:64]
        else:
            from preheat.tools.sample_models import make_sample_model

            assert opts.sample is not None
            self.say(f"sample model {opts.sample} (random weights, seed {opts.seed}; "
                     "reused when present)")  # fmt: skip
            path = make_sample_model(opts.sample, opts.out / "model" / opts.sample, opts.seed)
            path, name = path.resolve(), opts.sample
        return SourceModel(path, name, describe(path, name=name, version="1"))

    def start_s3(self) -> S3Client:
        """The network profile, the split of cores, then the S3 server with the bucket."""
        from preheat.tools.local.s3 import S3Process

        net, self.network_info = start_network(self.opts, self._stack, self.say)
        self.cores = split_cores_for(self.opts.memory_mb, self.say)
        self._s3_process = self._stack.enter_context(
            S3Process(net, cpus=frozenset(self.cores.server))
        )
        self.s3 = self._s3_process.client()
        self.s3.create_bucket(Bucket=BUCKET)
        return self.s3

    def strategy_context(self, model: SourceModel, functions_dir: Path) -> Context:
        """What the strategies share while preparing (see strategies.Context)."""
        assert self.s3 is not None and self._s3_process is not None, "start_s3() first"
        return Context(
            source=model.path,
            name=model.name,
            version="1",
            workdir=self.work,
            functions_dir=functions_dir,
            bucket=BUCKET,
            s3=self.s3,
            s3_env=self._s3_process.env(),
            progress=self.say,
            environments=self.environments,
        )

    @property
    def function_cpus(self) -> tuple[int, ...]:
        assert self.cores is not None, "start_s3() first"
        return tuple(self.cores.functions)

    def start_emulator(self, configs: Sequence[FunctionConfig], **kwargs: Any) -> Emulator:
        """The local Lambda on the functions' cores; says what it could not model."""
        from preheat.tools.emulator import Emulator

        assert self.cores is not None, "start_s3() first"
        emu = self._stack.enter_context(
            Emulator(configs, workdir=self.work / "emulator", cpus=self.cores.functions, **kwargs)
        )
        model = emu.resource_model(configs[0].name)
        self.resources = {"model": model.describe(), "s3_cores": list(self.cores.server),
                          "notes": [*model.notes, *emu.notices]}  # fmt: skip
        self.say(f"resources: {model.describe()}; S3 server on cores "
                 f"{format_cpus(self.cores.server)}")  # fmt: skip
        for note in self.resources["notes"]:
            self.say(f"resources: {note}")
        self.emulator = emu
        return emu
