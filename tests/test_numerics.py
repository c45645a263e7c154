"""The numerics a run trains in (bf16 autocast where native, else fp32), and the cheaper evaluation of the
-fast recipes: each can be turned off, and nothing changes for runs that predate them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vae_lib import TrainConfig, Trainer, evaluate, open_run, train_step
from vae_lib.core.checkpoint import read_checkpoint
from vae_lib.core.config import RECIPES
from vae_lib.core.data import to_model_input
from vae_lib.core.device import autocast_dtype, cpu_flags, has_native_bf16, threads_described, torch_threads
from vae_lib.core.history import History
from vae_lib.tools.benchmark import full_test_recon, time_to_quality
from vae_lib.tools.cli import build_parser, config_from_args, main

SAPPHIRE_RAPIDS = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
ZEN_4 = frozenset({"avx2", "avx512f", "avx512_bf16"})
SKYLAKE = frozenset({"avx2", "avx512f", "avx512bw"})
CONFIG = TrainConfig(batch_size=64, log_every=4, step_test_images=64)


@pytest.mark.parametrize(
    ("precision", "flags", "expected"),
    [
        ("auto", SAPPHIRE_RAPIDS, torch.bfloat16),
        ("auto", ZEN_4, torch.bfloat16),
        ("auto", SKYLAKE, None),  # bf16 would be emulated, slower than fp32
        ("auto", frozenset(), None),  # no /proc/cpuinfo (macOS, Windows)
        ("bf16", SKYLAKE, torch.bfloat16),
        ("fp32", SAPPHIRE_RAPIDS, None),
    ],
)
def test_precision_picks_bf16_only_where_the_cpu_computes_it_natively(precision, flags, expected) -> None:
    assert autocast_dtype(precision, "cpu", flags) is expected


def test_an_unknown_precision_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"precision must be one of \('auto', 'bf16', 'fp32'\), got 'fp16'"):
        autocast_dtype("fp16", "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="half")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()
    assert has_native_bf16("cpu", cpu_flags(cpuinfo)) and not has_native_bf16("cpu", frozenset({"avx2"}))


def test_the_cpu_description_names_the_model_numbers_and_native_bf16(tmp_path: Path) -> None:
    from vae_lib.tools.benchmark import cpu_description

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Intel(R) Xeon(R) Processor\n"
        "flags\t\t: fpu avx512_bf16 amx_bf16\n"
    )
    assert cpu_description(cpuinfo) == (
        "Intel(R) Xeon(R) Processor (family 6, model 143), native bf16: yes (amx_bf16, avx512_bf16)"
    )
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Apple M2\nflags\t\t: fpu\n")
    assert cpu_description(cpuinfo) == "Apple M2, native bf16: no"
    assert cpu_description(tmp_path / "missing") == "unknown CPU (no /proc/cpuinfo)"


def test_hypervisor_steal_is_the_stolen_share_of_all_cpu_time_over_the_block(tmp_path: Path) -> None:
    from vae_lib.tools.benchmark import HypervisorSteal

    stat = tmp_path / "stat"
    #                  user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  1000 10 200 5000 40 0 20 100 30 0\ncpu0 500 5 100 2500 20 0 10 50 15 0\n")
    with HypervisorSteal(stat) as steal:
        stat.write_text("cpu  1300 10 250 5200 40 0 30 500 90 0\n")  # +300 +50 +200 +10 +400 = 960 ticks
    assert steal.share == pytest.approx(400 / 960) and steal.described() == "; hypervisor steal 42%"
    with HypervisorSteal(tmp_path / "missing") as unknown:
        pass
    assert unknown.share is None and unknown.described() == ""
    with HypervisorSteal(stat) as still:  # no tick went by: no share to give
        pass
    assert still.share is None


def test_each_round_against_the_reference_shows_the_matmul_rate_just_before_it(tmp_path: Path, monkeypatch) -> None:
    # a machine can halve its speed with no steal (2.91x and 2.33x on one model-207 Xeon): the rate shows it
    from vae_lib.tools import benchmark

    rates = iter([1210.0, 1195.0, 1230.0, 954.0, 980.0, 1001.0])
    seconds = iter([67.8, 23.3, 35.5, 65.7, 52.0, 121.1])
    monkeypatch.setattr(benchmark, "check_reference", lambda reference: None)
    monkeypatch.setattr(benchmark, "matmul_gflops", lambda repeats, dtype: next(rates))
    monkeypatch.setattr(benchmark, "timed_command", lambda command, cwd: next(seconds))
    monkeypatch.setattr(benchmark, "autocast_dtype", lambda precision, device: torch.bfloat16)
    lines: list[str] = []
    figures = benchmark.compare_with_reference(tmp_path, lines.append, rounds=2)
    assert lines[0].startswith("round 1: reference ModularTrainer: 67.8 s")
    assert lines[0].endswith("; bf16 matmul 1,210 GFLOP/s just before")
    assert lines[3].startswith("round 2: vae_lib train --precision fp32: 65.7 s")
    assert lines[3].endswith("; bf16 matmul 954 GFLOP/s just before")
    assert lines[-1].startswith("the bf16 matmul ran at 954-1,230 GFLOP/s before the commands")
    assert figures["matmul_gflops_low"] == 954.0 and figures["matmul_gflops_high"] == 1230.0
    assert figures["reference_seconds"] == pytest.approx((67.8 + 121.1) / 2)


@pytest.mark.parametrize(("native", "bf16_size", "shown"), [(True, 4096, "bf16 1,800 GFLOP/s;"), (False, 512, None)])
def test_the_benchmark_times_an_emulated_bf16_matmul_small_and_says_it_is_emulated(
    monkeypatch, native: bool, bf16_size: int, shown: str | None
) -> None:
    # emulated bf16 ran at 1.4 GFLOP/s on an AVX2 AMD EPYC: a 4096 x 4096 product took minutes a time
    from vae_lib.tools import benchmark

    timed: list[tuple[torch.dtype, int]] = []

    def matmul_gflops(repeats: int = 3, dtype: torch.dtype = torch.float32, size: int = 4096) -> float:
        timed.append((dtype, size))
        return {torch.float32: 150.0, torch.bfloat16: 1800.0 if native else 1.37}[dtype]

    monkeypatch.setattr(benchmark, "matmul_gflops", matmul_gflops)
    monkeypatch.setattr(benchmark, "has_native_bf16", lambda device: native)
    timings = {"step_seconds": {"auto": 0.02, "fp32": 0.04}, "recorded_seconds": 1.1, "plain_seconds": 1.0}
    timings |= {"video_seconds": 2.0, "snapshots_per_run": 2}
    figures = benchmark.speed_figures(timings, 3.0, 937, 20, "bf16 autocast" if native else "fp32")
    assert timed == [(torch.float32, 4096), (torch.bfloat16, bf16_size)]
    figures |= {f"explorer_{name}_{kind}_ms": 5.0 for name in ("2d", "8d") for kind in ("median", "p95")}
    figures |= {"drawing_pad_median_ms": 9.0, "drawing_pad_p95_ms": 12.0, "drawing_pad_updates": 20}
    lines: list[str] = []
    benchmark.report_speed(figures, "bf16 autocast" if native else "fp32", "context", 10, lines.append)
    matmul_line = next(line for line in lines if line.startswith("4096x4096 matmul: fp32 150 GFLOP/s, "))
    if shown:
        assert shown in matmul_line and "emulated" not in matmul_line
    else:
        assert "bf16 emulated (not native on this CPU) 1.4 GFLOP/s at 512x512;" in matmul_line
    # where auto picks fp32 its timings are fp32's again: the lines say so, not "fp32 1600, fp32 3200"
    chosen = "bf16 autocast" if native else "fp32"
    samples = next(line for line in lines if line.startswith("training samples per second: "))
    assert samples == f"training samples per second: --precision fp32 1600, precision auto ({chosen}) 3200 (x2.00)"
    second_time = "precision auto trains in fp32 here: its figures below time fp32 a second time"
    assert any(line.startswith(second_time) for line in lines) is not native


def test_on_cuda_auto_asks_the_gpu_whether_it_has_bf16(monkeypatch) -> None:
    for supported, expected in ((True, torch.bfloat16), (False, None)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda supported=supported: supported)
        assert autocast_dtype("auto", "cuda") is expected
    assert autocast_dtype("auto", "mps") is None


def _layer_dtypes(model: torch.nn.Module) -> tuple[list[torch.dtype], list]:
    """Record the output dtype of every convolution the model runs."""
    dtypes: list[torch.dtype] = []
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    handles = [layer.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype)) for layer in layers]
    return dtypes, handles


def test_a_bf16_step_computes_convolutions_in_bf16_and_the_loss_weights_and_adam_in_fp32(small_train) -> None:
    batch = to_model_input(small_train.images[:64], 1)
    results = {}
    for autocast in (None, torch.bfloat16):
        torch.manual_seed(0)
        model = TrainConfig().build_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        dtypes, handles = _layer_dtypes(model)
        losses = [train_step(model, optimizer, batch, 1e-3, autocast) for _ in range(3)]
        for handle in handles:
            handle.remove()
        expected = torch.bfloat16 if autocast else torch.float32
        assert len(dtypes) == 3 * 8 and set(dtypes) == {expected}
        assert all(loss.dtype == torch.float32 for step in losses for loss in step)
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert all(s.dtype == torch.float32 for state in optimizer.state.values() for s in state.values())
        results[autocast] = torch.stack([torch.stack(step) for step in losses])
    # bf16 keeps 8 bits of mantissa: the same three steps agree to a few per cent, and are not identical
    assert torch.allclose(results[torch.bfloat16], results[None], rtol=0.05)
    assert not torch.equal(results[torch.bfloat16], results[None])


def test_the_trainer_trains_in_the_configured_precision_and_fp32_turns_autocast_off(small_train, small_test) -> None:
    for precision, expected in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        config = replace(CONFIG, precision=precision, log_every=1000)  # no step record inside the epoch
        trainer = Trainer(config, train_data=small_train, test_data=small_test, progress=False)
        dtypes, handles = _layer_dtypes(trainer.model)
        trainer.fit(1)
        train_dtypes = dtypes[: 8 * trainer.steps_per_epoch]
        assert set(train_dtypes) == {expected}, precision
        assert set(dtypes[8 * trainer.steps_per_epoch :]) == {torch.float32}  # evaluation stays in fp32
        for handle in handles:
            handle.remove()


def test_a_resumed_run_trains_in_the_precision_it_is_resumed_with(small_train, small_test, tmp_path) -> None:
    config = replace(CONFIG, precision="fp32", log_every=1000, epochs=1)
    data = {"train_data": small_train, "test_data": small_test, "progress": False}
    Trainer(config, run_dir=tmp_path, **data).fit(1)
    reports: list[str] = []
    trainer = open_run(replace(config, precision="bf16", epochs=2), tmp_path, report=reports.append, **data)
    assert reports == ["changed on resume: epochs: 1 vs 2", "changed on resume: precision: 'fp32' vs 'bf16'"]
    dtypes, handles = _layer_dtypes(trainer.model)
    trainer.fit(1)
    assert set(dtypes[: 8 * trainer.steps_per_epoch]) == {torch.bfloat16}
    for handle in handles:
        handle.remove()


def test_runs_saved_before_precision_existed_continue_in_fp32(small_train, small_test, tmp_path) -> None:
    stored = CONFIG.to_dict()
    del stored["precision"], stored["epoch_test_images"]
    assert TrainConfig.from_dict(stored).precision == "fp32"
    assert TrainConfig.from_dict(stored).epoch_test_images == 0
    shipped = read_checkpoint(Path(__file__).parents[1] / "outputs" / "checkpoints" / "vae_2d.pt")
    assert TrainConfig.from_dict(shipped["config"]) == RECIPES["2d"]
    assert History.from_dict(shipped["history"]).epochs[-1].test_images is None


def test_epochs_but_the_last_evaluate_the_first_epoch_test_images(small_train, small_test) -> None:
    config = replace(CONFIG, epochs=2, epoch_test_images=100, precision="fp32")
    trainer = Trainer(config, train_data=small_train, test_data=small_test, progress=False)
    first = trainer.fit(1).epochs[0]
    assert first.test_images == 100
    assert first.test_recon == evaluate(trainer.model, small_test.images[:100], seed=0)["recon"]
    assert full_test_recon(trainer) == evaluate(trainer.model, small_test.images, seed=0)["recon"] != first.test_recon
    last = trainer.fit(1).epochs[1]
    assert last.test_images == len(small_test) == 256
    assert last.test_recon == full_test_recon(trainer) == evaluate(trainer.model, small_test.images, seed=0)["recon"]


def test_the_fast_recipes_change_only_numerics_evaluation_and_the_weight_average() -> None:
    changed = ("precision", "epoch_test_images", "ema_decay")
    for name in ("2d", "8d"):
        shipped, fast = RECIPES[name], RECIPES[f"{name}-fast"]
        assert (shipped.precision, shipped.epoch_test_images, shipped.ema_decay) == ("fp32", 0, 0.0)
        assert (fast.precision, fast.epoch_test_images, fast.ema_decay) == ("auto", 2000, 0.998)
        others = tuple(f for f in shipped.to_dict() if f not in changed)
        assert shipped.differences(fast, others) == []


def test_the_command_line_turns_each_speedup_off() -> None:
    from vae_lib.tools.cli import build_parser

    args = build_parser().parse_args(
        ["train", "--recipe", "2d-fast", "--precision", "fp32", "--epoch-test-images", "0", "--ema-decay", "0"]
    )
    assert config_from_args(args) == RECIPES["2d"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--precision", "fp16"])


def test_the_lab_recipe_is_the_fast_one_over_13_epochs_with_the_gradient_clipped_and_lamb() -> None:
    fast, lab = RECIPES["2d-fast"], RECIPES["2d-lab"]
    differing = ("epochs", "keep_epochs", "max_grad_norm", "lamb_rate")
    assert fast.differences(lab, tuple(f for f in fast.to_dict() if f not in differing)) == []
    assert lab.epochs == 13 and lab.max_grad_norm == 1.0 and fast.max_grad_norm == 0
    assert lab.lamb_rate == 0.007 and fast.lamb_rate == 0
    steps_per_epoch = 60_000 // lab.batch_size
    # the cosine decays over the 13 epochs, not the fast recipe's 40: half-way at 6.5, the floor at the end
    assert lab.learning_rate_at(13 * steps_per_epoch // 2, steps_per_epoch) == pytest.approx(
        0.51 * lab.learning_rate, rel=1e-3
    )
    assert lab.learning_rate_at(13 * steps_per_epoch, steps_per_epoch) == pytest.approx(0.02 * lab.learning_rate)
    assert fast.learning_rate_at(13 * steps_per_epoch, steps_per_epoch) > 0.7 * fast.learning_rate


def test_time_to_quality_races_both_recipes_and_reports_the_ratio(capsys) -> None:
    figures = time_to_quality("2d", print, target=0.2, train_subset=1280, test_subset=2500, epochs=2)
    printed = capsys.readouterr().out
    shipped, fast = figures["shipped"], figures["fast"]
    # the shipped recipe stops once it reaches the target; the fast one trains to its end
    assert shipped["epoch_reached"] == 1 and shipped["final_recon"] is None
    assert fast["epoch_reached"] in (1, 2) and 0 < fast["final_recon"] < 0.2
    ratio = fast["cpu_seconds_to_target"] / shipped["cpu_seconds_to_target"]
    assert f"time to test recon 0.2, fast / shipped: {ratio:.3f} in CPU seconds" in printed
    assert 0 < shipped["cpu_seconds_to_target"] <= shipped["cpu_seconds_per_epoch"] * 1.001
    epochs_printed = [line.split(":")[0] for line in printed.splitlines() if "CPU s, test recon" in line]
    assert epochs_printed == ["shipped epoch   1", "fast    epoch   1", "fast    epoch   2"]


def test_the_race_can_give_the_fast_recipe_a_shorter_schedule(capsys) -> None:
    figures = time_to_quality("8d", print, target=0.5, fast_epochs=1, train_subset=640, test_subset=500, epochs=3)
    printed = capsys.readouterr().out
    assert "final (1 epoch)" in printed and figures["fast"]["final_recon"] is not None
    epochs_printed = [line.split(":")[0] for line in printed.splitlines() if "CPU s, test recon" in line]
    assert epochs_printed == ["shipped epoch   1", "fast    epoch   1"]
    parser = build_parser()
    assert parser.parse_args(["benchmark", "--time-to-quality", "2d", "--fast-epochs", "30"]).fast_epochs == 30
    with pytest.raises(SystemExit):
        parser.parse_args(["benchmark", "--time-to-quality", "2d", "--fast-epochs", "0"])


def test_the_race_can_be_between_any_recipes_named_by_themselves(capsys) -> None:
    racers = ("2d-fast", "2d")
    figures = time_to_quality("2d", print, target=0.2, racers=racers, train_subset=1280, test_subset=2500, epochs=2)
    printed = capsys.readouterr().out
    assert list(figures) == list(racers)
    # the first racer stops at the target; the other trains to its end and is compared with the first
    assert figures["2d-fast"]["epoch_reached"] == 1 and figures["2d-fast"]["final_recon"] is None
    assert figures["2d"]["final_recon"] is not None and figures["2d"]["epoch_reached"] in (1, 2)
    ratio = figures["2d"]["cpu_seconds_to_target"] / figures["2d-fast"]["cpu_seconds_to_target"]
    assert f"time to test recon 0.2, 2d / 2d-fast: {ratio:.3f} in CPU seconds" in printed
    epochs_printed = [line.split(":")[0] for line in printed.splitlines() if "CPU s, test recon" in line]
    assert epochs_printed == ["2d-fast epoch   1", "2d      epoch   1", "2d      epoch   2"]
    with pytest.raises(ValueError, match="two or more different recipes"):
        time_to_quality("2d", print, racers=("2d-fast",))
    with pytest.raises(ValueError, match="--fast-epochs shortens the 2d-fast recipe"):
        time_to_quality("2d", print, racers=("2d", "8d"), fast_epochs=3)
    parser = build_parser()
    assert parser.parse_args(["benchmark", "--time-to-quality", "2d", "--racers", "2d-fast", "2d"]).racers == [
        "2d-fast",
        "2d",
    ]
    with pytest.raises(SystemExit):
        parser.parse_args(["benchmark", "--time-to-quality", "2d", "--racers", "2d-slow"])


def test_each_racer_takes_the_path_of_its_run_alone(mnist_train, mnist_test) -> None:
    changes = {"train_subset": 640, "test_subset": 500, "epochs": 2}
    racers = ("2d", "2d-fast")
    figures = time_to_quality("2d", lambda line: None, target=0.0, to_the_end=True, racers=racers, **changes)
    for recipe in racers:
        alone = Trainer(replace(RECIPES[recipe], **changes), train_data=mnist_train, test_data=mnist_test)
        alone.fit(2)
        # the same z draws as alone, although the other racer trained between its epochs
        assert figures[recipe]["final_recon"] == full_test_recon(alone)


def test_the_reference_comparison_needs_a_clone_of_the_reference_and_says_so_before_benchmarking(
    tmp_path: Path, capsys
) -> None:
    assert main(["benchmark", "--reference", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        f"error: {tmp_path} has no trainer.py and utils.py: clone the reference implementation "
        "(github.com/Ganesh2609/VariationalAutoencoder) there"
    )
    assert "seconds per epoch" not in captured.out


def test_torch_threads_holds_a_count_for_a_block_and_puts_it_back() -> None:
    torch.set_num_threads(3)  # no default of these machines: a restore to one would fail here
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 3
    with pytest.raises(RuntimeError, match="inside"), torch_threads(1):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == 3
    with torch_threads(None):
        assert torch.get_num_threads() == 3


def test_threads_described_counts_torch_threads_in_words() -> None:
    with torch_threads(1):
        assert threads_described() == "1 thread"
    with torch_threads(3):
        assert threads_described() == "3 threads"
