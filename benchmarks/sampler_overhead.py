"""Time course_lib's DDPM and DDIM samplers against the equivalent diffusers scheduler loops.

Usage::

    .venv/bin/pip install -e '.[bench]'          # diffusers, only for this benchmark
    .venv/bin/python -m benchmarks.sampler_overhead [--steps 1000] [--batch 2500] [--repeats 7]
    python3 benchmarks/sampler_overhead.py --help

Each row runs one sampler both ways with the same model, the same schedule (linear, 1e-4 .. 0.02)
and the same generator seed, on CPU with one intra-op thread by default:

- ``ancestral``: ``diffusion.sample`` (variance ``"small"``) against a loop over
  ``DDPMScheduler.step`` (``variance_type="fixed_small"``, ``clip_sample=False``);
- ``DDIM``: ``diffusion.ddim_sample`` against ``DDIMScheduler`` (``timestep_spacing="trailing"``,
  ``set_alpha_to_one=True``, ``clip_sample=False``), the same timesteps.

Both loops run under ``torch.inference_mode`` and give the model a long tensor ``t`` of shape
``(N,)`` (the diffusers loop expands the scheduler's 0-d timestep, as diffusers' UNets do). Two
models: a small ``TimeConditionedMLP`` (the ratio of whole sampling calls), and one that returns a
precomputed tensor, so that the time measured is the sampler's own work outside the model (its
overhead), reported per step. The two libraries alternate within each repeat (the order flips
every repeat), and a ratio is the median over repeats of course_lib's time over diffusers' time in
the same repeat, which keeps it meaningful on a loaded machine. The clock is the process's CPU
time by default (``--clock cpu``): with one thread it is the wall time of an idle machine, and it
does not count the time another job holds the core; ``--clock wall`` for wall time (and for
``--threads`` > 1). The outputs of the two loops are
compared too, as a check that they compute the same thing: they differ only by float32 rounding
(diffusers keeps its schedule in float32, REFERENCES.md C10). Speed is measured here, never asserted
in the tests. Exits 0 without diffusers (it says how to install it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from course_lib import diffusion  # noqa: E402
from course_lib.nets import TimeConditionedMLP  # noqa: E402

DATA_DIM = 2


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} torch thread(s), Python {platform.python_version()}, "
            f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")


class Constant(torch.nn.Module):
    """A "model" that returns a precomputed tensor: timing a sampler with it times the sampler."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = out

    def forward(self, x, t):
        return self.out


def diffusers_ddpm(scheduler, model, shape, generator):
    with torch.inference_mode():
        x = torch.randn(shape, generator=generator)
        for t in scheduler.timesteps:
            out = model(x, t.expand(shape[0]))
            x = scheduler.step(out, t, x, generator=generator).prev_sample
    return x


def diffusers_ddim(scheduler, model, shape, num_steps, eta, generator):
    with torch.inference_mode():
        scheduler.set_timesteps(num_steps)
        x = torch.randn(shape, generator=generator)
        for t in scheduler.timesteps:
            out = model(x, t.expand(shape[0]))
            x = scheduler.step(out, t, x, eta=eta, generator=generator).prev_sample
    return x


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def timed(fn, seed: int, clock):
    g = torch.Generator().manual_seed(seed)
    t0 = clock()
    out = fn(g)
    return clock() - t0, out


def compare(ours, theirs, repeats: int, clock, seed: int = 0):
    """Interleaved timing: returns (median ours s, median theirs s, median per-repeat ratio, outputs)."""
    timed(ours, seed, clock)                                        # warm-up, untimed
    timed(theirs, seed, clock)
    a, b = [], []
    for r in range(repeats):
        pair = [(ours, a), (theirs, b)] if r % 2 == 0 else [(theirs, b), (ours, a)]
        for fn, acc in pair:
            acc.append(timed(fn, seed, clock))
    ratio = statistics.median(x[0] / y[0] for x, y in zip(a, b))
    return (statistics.median(x[0] for x in a), statistics.median(y[0] for y in b), ratio,
            a[-1][1], b[-1][1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1000, help="T, the schedule's number of steps")
    ap.add_argument("--batch", type=int, default=2500, help="samples per call")
    ap.add_argument("--repeats", type=int, default=7, help="timed calls of each loop per row")
    ap.add_argument("--ddim-steps", type=int, default=50, help="DDIM sampling steps")
    ap.add_argument("--eta", type=float, default=0.0, help="DDIM eta")
    ap.add_argument("--hidden", type=int, default=64, help="width of the MLP")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                    help="process CPU time (default) or wall time")
    args = ap.parse_args(argv)
    try:
        import diffusers
        from diffusers import DDIMScheduler, DDPMScheduler
    except ImportError:
        print("sampler_overhead: diffusers is not installed; this benchmark compares with it.\n"
              "Install the benchmark's extra:  .venv/bin/pip install -e '.[bench]'")
        return 0

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    T, n, shape = args.steps, args.ddim_steps, (args.batch, DATA_DIM)
    schedule = diffusion.NoiseSchedule.linear(T)
    common = dict(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                  clip_sample=False, prediction_type="epsilon")
    ddpm = DDPMScheduler(variance_type="fixed_small", **common)
    ddim = DDIMScheduler(set_alpha_to_one=True, timestep_spacing="trailing", **common)
    models = {
        "MLP": TimeConditionedMLP(DATA_DIM, hidden=args.hidden, num_layers=2, embed_dim=32).eval(),
        "none (overhead)": Constant(0.1 * torch.randn(shape)),
    }
    rows, summary = [], {}
    setup = (f"T = {T}, batch {args.batch}, DDIM {n} steps (eta {args.eta}), median of "
             f"{args.repeats} interleaved repeats, {args.clock} time; {machine()}, "
             f"diffusers {diffusers.__version__}")
    print(setup, flush=True)
    for name, model in models.items():
        for sampler, steps, ours, theirs in [
            ("ancestral", T,
             lambda g, m=model: diffusion.sample(schedule, m, shape, generator=g),
             lambda g, m=model: diffusers_ddpm(ddpm, m, shape, g)),
            ("DDIM", n,
             lambda g, m=model: diffusion.ddim_sample(schedule, m, shape, n, eta=args.eta,
                                                      generator=g),
             lambda g, m=model: diffusers_ddim(ddim, m, shape, n, args.eta, g)),
        ]:
            t_ours, t_theirs, ratio, x_ours, x_theirs = compare(ours, theirs, args.repeats, CLOCKS[args.clock])
            err = ((x_ours - x_theirs).abs().max() / x_theirs.abs().max()).item()
            if name == "MLP":
                cells = f"{1e3 * t_ours:.1f} ms | {1e3 * t_theirs:.1f} ms"
            else:
                cells = f"{1e6 * t_ours / steps:.1f} us/step | {1e6 * t_theirs / steps:.1f} us/step"
            rows.append(f"| {sampler} | {name} | {cells} | **{ratio:.2f}** | {err:.1e} |")
            summary[(sampler, name)] = ratio
            print(rows[-1], flush=True)
    table = "\n".join([
        "| sampler | model | course_lib | diffusers | ratio | max rel. difference |",
        "|---|---|---|---|---|---|", *rows, "",
        setup + ".",
    ])
    print("\n" + table)
    met = all(r <= 1.0 for r in summary.values())
    print(f"\ntarget (every ratio <= 1.0): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
