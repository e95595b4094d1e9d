"""Training throughput in windows (features) per second: the notebook's padding against qa-train's, on real steps.

    python -m spanqa.benchmarks.train_throughput --data ../shared/data/squad/train-v1.1.reconstructed.json.gz \
        --examples 2000 --steps 10 --warmup-steps 1 --rounds 2 --json runs/train_throughput.json

Every configuration trains the same model (the packaged backbone with a seeded fresh QA head, or --model) on the
windows of the same first N examples, starting from the same initial weights in a fresh QATrainer built with
qa-train's own arguments, through an ordinary `Trainer.train()` stopped by `max_steps`:
- notebook: every window padded to 384 tokens (the notebook's padding="max_length"), random batches, fp32;
- dynamic: batches padded to their longest window, length-grouped (qa-train's defaults), fp32;
- dynamic-bf16: dynamic with bf16 autocast; CPUs without AVX512-BF16 or AMX emulate it, and the output says so.

A step is timed from the end of the previous step to the end of its own, so it covers drawing and padding its batch,
forward, backward, gradient clipping and the AdamW update. Each round's first steps are warm-up and are left out:
the first allocates the optimizer state, and the length-grouped sampler deals the longest batch first. With
--rounds R every configuration trains R times, each round with its own data order (seed + round) and the
configurations' order reversed every other round, so load that drifts on a shared machine hits all of them alike.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import datasets
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback, set_seed
from transformers.trainer_callback import PrinterCallback

from spanqa.engine.core.data import DataFormatError
from spanqa.engine.core.decoder import DecodeOptions
from spanqa.engine.core.tokenizer import QATokenizer
from spanqa.engine.core.windows import WindowOptions, make_windows
from spanqa.training.dataset import WindowCollator, windows_dataset
from spanqa.training.model import bf16_is_native, check_model, default_model_path, load_model, resolve_precision
from spanqa.training.options import Precision, TrainingInputError, TrainOptions
from spanqa.training.output import OutputPlan, plan_output
from spanqa.training.report import library_versions
from spanqa.training.splits import load_run_data
from spanqa.training.run import training_arguments
from spanqa.training.trainer import QATrainer

PROGRAM = "train_throughput"
EXIT_BAD_INPUT = 2
BASELINE = "notebook"


@dataclass(frozen=True)
class Config:
    name: str
    fixed_width: bool  # pad every window to the window length, as the notebook's features were
    group_by_length: bool
    precision: Precision


CONFIGS = {
    config.name: config
    for config in (
        Config(BASELINE, fixed_width=True, group_by_length=False, precision="fp32"),
        Config("dynamic", fixed_width=False, group_by_length=True, precision="fp32"),
        Config("dynamic-bf16", fixed_width=False, group_by_length=True, precision="bf16"),
    )
}


@dataclass(frozen=True)
class BenchOptions:
    data: str
    model: str | None = None
    examples: int = 2000
    steps: int = 10  # timed steps per configuration and round
    warmup_steps: int = 1
    rounds: int = 1
    batch_size: int = 16
    configs: tuple[str, ...] = tuple(CONFIGS)
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("examples", "steps", "warmup_steps", "rounds", "batch_size"):
            if getattr(self, name) < 1:
                # A round's first step has no earlier step end to be timed from, so at least one warm-up step is needed.
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        unknown = [name for name in self.configs if name not in CONFIGS]
        if unknown or not self.configs:
            named = ", ".join(unknown) or "(none given)"
            raise ValueError(f"--configs: unknown {named}; choose from {', '.join(CONFIGS)}")
        if len(set(self.configs)) != len(self.configs):
            raise ValueError(f"--configs names a configuration twice: {','.join(self.configs)}")


@dataclass(frozen=True)
class Batch:
    """What the collator handed the model."""

    rows: int
    width: int  # padded length
    real_tokens: int  # before padding
    longest: int  # longest window before padding


@dataclass(frozen=True)
class Step:
    round: int
    index: int  # within its round, from 0
    warmup: bool
    seconds: float | None  # None for a round's first step: there is no earlier step end to time it from
    rows: int
    width: int
    real_tokens: int
    longest: int
    padded_tokens: int  # counted by the Trainer from the tensors it trained on


@dataclass(frozen=True)
class ConfigResult:
    name: str
    padding: str
    batches: str
    precision: str  # "fp32", "bf16 (native)" or "bf16 (emulated)"
    timed_steps: int
    median_seconds_per_step: float
    mean_seconds_per_step: float
    features_per_second: float  # windows per timed step / median step time
    sustained_features_per_second: float  # timed windows / timed seconds
    tokens_per_second_with_padding: float  # on the median step time, like features_per_second
    tokens_per_second_without_padding: float
    padding_fraction: float  # of the timed steps' tokens
    mean_width: float
    speedup_vs_notebook: float | None  # features_per_second over the notebook's; None without a notebook run
    steps: list[Step]


@dataclass(frozen=True)
class Setup:
    """Shared by every configuration: the same windows, the same initial weights."""

    options: TrainOptions
    plan: OutputPlan
    tokenizer: PreTrainedTokenizerBase
    initial_model: PreTrainedModel
    dataset: datasets.Dataset
    window_length: int


class RecordingCollator:
    """Pads through WindowCollator and notes each batch's shape, in the order the Trainer draws batches."""

    def __init__(self, collator: WindowCollator) -> None:
        self.collator = collator
        self.batches: list[Batch] = []

    def __call__(self, features: list[dict]) -> dict:
        lengths = [len(row["input_ids"]) for row in features]
        batch = self.collator(features)
        rows, width = batch["input_ids"].shape
        self.batches.append(Batch(rows, width, sum(lengths), max(lengths)))
        return batch


class StepClock(TrainerCallback):
    """Notes when each optimizer step ends and how many tokens the Trainer has fed the model by then."""

    def __init__(self, label: str, batches: list[Batch]) -> None:
        self.label = label
        self.batches = batches
        self.ends: list[float] = []
        self.tokens_seen: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # kernels run asynchronously; the step is done when the device is
        self.ends.append(time.perf_counter())
        self.tokens_seen.append(state.num_input_tokens_seen)
        seconds = f"{self.ends[-1] - self.ends[-2]:.2f} s" if len(self.ends) > 1 else "(not timed)"
        batch = self.batches[len(self.ends) - 1]
        print(f"{self.label} step {len(self.ends)}/{state.max_steps}: {seconds}, {batch.rows}x{batch.width}",
              file=sys.stderr, flush=True)  # fmt: skip
        return control


def prepare(options: BenchOptions, scratch: Path) -> Setup:
    model_source = options.model or default_model_path()
    train_options = TrainOptions(
        train=options.data, output=str(scratch / "run"), model=model_source, batch_size=options.batch_size,
        max_train_examples=options.examples, seed=options.seed,
        # One log, after the last step's end: logging never falls inside a timed step.
        logging_steps=options.warmup_steps + options.steps,
    )  # fmt: skip
    check_model(model_source, train_options.max_length)
    examples = load_run_data(train_options).train.examples
    set_seed(options.seed)  # the fresh QA head is drawn from the global generator
    loaded = load_model(model_source)
    window_options = WindowOptions(train_options.max_length, train_options.stride, train_options.max_question_tokens)
    windows = make_windows(QATokenizer.from_transformers(loaded.tokenizer), examples, window_options, with_labels=True)
    print(f"{len(examples)} examples -> {len(windows)} windows", file=sys.stderr)
    return Setup(
        train_options, plan_output(train_options), loaded.tokenizer, loaded.model, windows_dataset(windows),
        window_options.max_length,
    )  # fmt: skip


def run_round(setup: Setup, config: Config, options: BenchOptions, round_index: int) -> list[Step]:
    cuda = torch.cuda.is_available()
    train_options = replace(
        setup.options,
        group_by_length=config.group_by_length,
        precision=config.precision,
        seed=options.seed + round_index,
    )
    args = training_arguments(train_options, setup.plan, resolve_precision(config.precision, cuda), cuda, False)
    args.set_save(strategy="no")
    args.max_steps = options.warmup_steps + options.steps
    args.include_num_input_tokens_seen = "all"
    args.disable_tqdm = True  # the clock reports progress on stderr; stdout is kept for the table
    collator = RecordingCollator(WindowCollator(setup.tokenizer, setup.window_length if config.fixed_width else None))
    clock = StepClock(f"{config.name} round {round_index + 1}", collator.batches)
    trainer = QATrainer(
        model=copy.deepcopy(setup.initial_model),
        args=args,
        train_dataset=setup.dataset,
        eval_set=None,
        decode_options=DecodeOptions(),
        data_collator=collator,
        processing_class=setup.tokenizer,
        callbacks=[clock],
    )
    trainer.remove_callback(PrinterCallback)  # it would print the final metrics dict on stdout
    trainer.train()
    del trainer
    gc.collect()
    return _steps(clock, collator.batches, options, round_index)


def _steps(clock: StepClock, batches: list[Batch], options: BenchOptions, round_index: int) -> list[Step]:
    steps = []
    previous_end, previous_seen = None, 0
    # The loader collates one batch ahead, so the collator may have seen one batch more than was trained.
    for index, (end, seen, batch) in enumerate(zip(clock.ends, clock.tokens_seen, batches)):
        padded_tokens = seen - previous_seen
        if padded_tokens != batch.rows * batch.width:
            raise RuntimeError(
                f"step {index}: the Trainer trained on {padded_tokens} tokens, but the collated batch was "
                f"{batch.rows}x{batch.width}; batches and steps are out of step"
            )
        seconds = None if previous_end is None else end - previous_end
        steps.append(Step(
            round_index, index, index < options.warmup_steps, seconds, batch.rows, batch.width, batch.real_tokens,
            batch.longest, padded_tokens,
        ))  # fmt: skip
        previous_end, previous_seen = end, seen
    if len(steps) != options.warmup_steps + options.steps:
        raise RuntimeError(f"expected {options.warmup_steps + options.steps} steps, timed {len(steps)}")
    return steps


def summarise(config: Config, steps: list[Step], window_length: int) -> ConfigResult:
    timed = [step for step in steps if not step.warmup]
    seconds = [step.seconds for step in timed]
    median = statistics.median(seconds)
    per_step = {
        "rows": sum(step.rows for step in timed) / len(timed),
        "padded": sum(step.padded_tokens for step in timed) / len(timed),
        "real": sum(step.real_tokens for step in timed) / len(timed),
    }
    precision = config.precision
    if precision == "bf16":
        precision += " (native)" if bf16_is_native(torch.cuda.is_available()) else " (emulated)"
    return ConfigResult(
        name=config.name,
        padding=f"all to {window_length}" if config.fixed_width else "to longest in batch",
        batches="length-grouped" if config.group_by_length else "random",
        precision=precision,
        timed_steps=len(timed),
        median_seconds_per_step=median,
        mean_seconds_per_step=statistics.fmean(seconds),
        features_per_second=per_step["rows"] / median,
        sustained_features_per_second=sum(step.rows for step in timed) / sum(seconds),
        tokens_per_second_with_padding=per_step["padded"] / median,
        tokens_per_second_without_padding=per_step["real"] / median,
        padding_fraction=1 - per_step["real"] / per_step["padded"],
        mean_width=per_step["padded"] / per_step["rows"],
        speedup_vs_notebook=None,
        steps=steps,
    )


@dataclass(frozen=True)
class Machine:
    cpu: str  # model name from /proc/cpuinfo
    logical_cores: int | None
    usable_cores: int | None  # this process's CPU affinity
    torch_threads: int
    device: str  # "cpu" or "cuda"
    gpu: str | None
    bf16_native: bool
    python: str

    @classmethod
    def this_one(cls) -> Machine:
        cpu = platform.processor() or "unknown"
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
                cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), cpu)
        except OSError:  # not Linux
            pass
        cuda = torch.cuda.is_available()
        return cls(
            cpu=cpu,
            logical_cores=os.cpu_count(),
            usable_cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            torch_threads=torch.get_num_threads(),
            device="cuda" if cuda else "cpu",
            gpu=torch.cuda.get_device_name(0) if cuda else None,
            bf16_native=bf16_is_native(cuda),
            python=platform.python_version(),
        )


@dataclass(frozen=True)
class ThroughputReport:
    options: BenchOptions
    model: str  # the model path or name trained
    examples: int
    windows: int
    window_length: int
    machine: Machine
    versions: dict[str, str]
    results: list[ConfigResult]
    benchmark: str = PROGRAM

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=False) + "\n"


def run(options: BenchOptions) -> ThroughputReport:
    with tempfile.TemporaryDirectory(prefix="spanqa-train-throughput-") as scratch:
        setup = prepare(options, Path(scratch))
        steps: dict[str, list[Step]] = {name: [] for name in options.configs}
        for round_index in range(options.rounds):
            order = options.configs if round_index % 2 == 0 else options.configs[::-1]
            for name in order:
                steps[name] += run_round(setup, CONFIGS[name], options, round_index)
    results = [summarise(CONFIGS[name], steps[name], setup.window_length) for name in options.configs]
    baseline = next((result for result in results if result.name == BASELINE), None)
    if baseline is not None:
        results = [
            replace(result, speedup_vs_notebook=result.features_per_second / baseline.features_per_second)
            for result in results
        ]
    return ThroughputReport(
        options=options,
        model=setup.options.model,
        examples=options.examples,
        windows=len(setup.dataset),
        window_length=setup.window_length,
        machine=Machine.this_one(),
        versions=library_versions(),
        results=results,
    )


def markdown(report: ThroughputReport) -> str:
    options, host, versions = report.options, report.machine, report.versions
    device = host.gpu or f"{host.cpu}, {host.usable_cores} cores, torch threads {host.torch_threads}"
    lines = [
        f"{report.examples} examples -> {report.windows} windows; batch {options.batch_size}; "
        f"{options.rounds} round(s) of {options.warmup_steps} warm-up + {options.steps} timed steps per "
        f"configuration; model {report.model}.",
        f"Machine: {device}; torch {versions['torch']}, transformers {versions['transformers']}.",
        "",
        "| config | padding | batches | precision | timed steps | median s/step | features/s | sustained features/s "
        "| tokens/s incl. padding | tokens/s excl. padding | padding | mean width | vs notebook |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for result in report.results:
        versus = "—" if result.speedup_vs_notebook is None else f"{result.speedup_vs_notebook:.2f}x"
        lines.append(
            f"| {result.name} | {result.padding} | {result.batches} | {result.precision} | {result.timed_steps} | "
            f"{result.median_seconds_per_step:.3f} | {result.features_per_second:.2f} | "
            f"{result.sustained_features_per_second:.2f} | {result.tokens_per_second_with_padding:,.0f} | "
            f"{result.tokens_per_second_without_padding:,.0f} | {result.padding_fraction:.1%} | "
            f"{result.mean_width:.0f} | {versus} |"
        )
    lines += [
        "",
        "features/s = windows per step / median step time (tokens/s likewise); sustained = timed windows / timed "
        "seconds. A step runs from the previous step's end to its own: batch, forward, backward, clipping, AdamW.",
    ]
    if any(result.precision == "bf16 (emulated)" for result in report.results):
        lines.append(
            "bf16 here is emulated: this CPU has no AVX512-BF16 or AMX, so the bf16 row shows the cost of emulation, "
            "not what bf16 gains where the hardware has it (qa-train's --precision auto stays in fp32 here)."
        )
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> tuple[BenchOptions, Path | None]:
    defaults = BenchOptions(data="")
    parser = argparse.ArgumentParser(
        prog=f"python -m spanqa.benchmarks.{PROGRAM}", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--data", required=True, help="training data: SQuAD JSON (.json or .json.gz) or JSONL")
    parser.add_argument("--model", help="model folder or Hub name (default: packaged all-MiniLM-L6-v2, fresh QA head)")
    parser.add_argument("--examples", type=int, default=defaults.examples,
                        help="use the first N examples (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=defaults.steps,
                        help="timed steps per configuration and round (default: %(default)s)")
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps,
                        help="untimed steps at the start of each round, at least 1 (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=defaults.rounds,
                        help="train every configuration this many times, interleaved (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help="windows per step (default: %(default)s)")
    parser.add_argument("--configs", default=",".join(defaults.configs), help="comma-separated, from: %(default)s")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="fresh QA head and data order (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    arguments = parser.parse_args(argv)
    configs = tuple(name.strip() for name in arguments.configs.split(",") if name.strip())
    try:
        options = BenchOptions(
            arguments.data, arguments.model, arguments.examples, arguments.steps, arguments.warmup_steps,
            arguments.rounds, arguments.batch_size, configs, arguments.seed,
        )  # fmt: skip
    except ValueError as error:
        parser.error(str(error))
    return options, arguments.json


def main(argv: list[str] | None = None) -> int:
    options, json_path = _parse_args(argv)
    try:
        report = run(options)
    except (TrainingInputError, DataFormatError) as error:
        one_line = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        print(f"{PROGRAM}: error: {one_line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(markdown(report))
    if json_path is not None:
        json_path.write_text(report.to_json(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
