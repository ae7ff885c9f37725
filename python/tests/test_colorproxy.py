"""The Python package against the command line (an independent path to the same results) and
against PyTorch/torchvision.

Run by scripts/test.sh (which builds the package into the project's .venv first):
    .venv/bin/python -m pytest python/tests
The binary is COLORPROXY_BIN (default target/release/colorproxy). Data: the generated scenes
(always), and ../shared/data's photos when COLORPROXY_SHARED_DATA is set.
"""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest
import torch

import colorproxy

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("COLORPROXY_BIN", ROOT / "target" / "release" / "colorproxy"))
SHARED = os.environ.get("COLORPROXY_SHARED_DATA")


def cli(*args):
    r = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, f"colorproxy {' '.join(map(str, args))}: {r.stderr}"
    return r.stdout


@pytest.fixture(scope="session")
def scenes(tmp_path_factory):
    """Generated scenes: unlabelled/ (pretraining) and voc/ (a VOC-style set)."""
    d = tmp_path_factory.mktemp("scenes")
    cli("data", "generate", "--out", d, "--images", 64, "--seed", 0)
    return d


@pytest.fixture(scope="session")
def photo(scenes):
    """A real photograph when the shared data is there, else a generated scene."""
    if SHARED:
        p = pathlib.Path(SHARED) / "photos" / "train" / "mvtb-flowers2.jpg"
        if p.exists():
            return p
    return sorted((scenes / "unlabelled").rglob("*.jpg"))[0]


POINTS = [(10, 10), (40, 60), (63, 5)]


def check_targets(got, want):
    assert got["points"].tolist() == [[p["y"], p["x"]] for p in want]
    for key, json_key in [("hue_hist", "hue_hist"), ("chroma_hist", "chroma_hist"), ("hue_weight", "hue_weight"),
                          ("chroma_weight", "chroma_weight"), ("gray", "gray"), ("ab", "lab_ab")]:
        expected = torch.tensor([p[json_key] for p in want], dtype=torch.float32)
        assert got[key].dtype == torch.float32
        assert torch.equal(got[key], expected), key


def cli_targets(image):
    return json.loads(cli("targets", "--image", image, *sum((["--point", f"{y},{x}"] for y, x in POINTS), []),
                          "--json"))["points"]


def test_targets_equal_the_cli_json(photo, tmp_path):
    # A file: decoded by the same Rust decoder.
    want = cli_targets(photo)
    for source in [photo, str(photo)]:
        check_targets(colorproxy.targets(source, POINTS), want)
    # Pixels from Python (numpy, PIL): equal to the CLI on the same pixels, a lossless PNG of them
    # (JPEG decoders differ in their last bits, so not the JPEG itself).
    from PIL import Image

    img = Image.open(photo).convert("RGB")
    png = tmp_path / "same-pixels.png"
    img.save(png)
    want = cli_targets(png)
    for source in [np.asarray(img), img, png]:
        got = colorproxy.targets(source, POINTS)
        check_targets(got, want)
    # The histograms are distributions (independent of the implementation): each sums to 1.
    assert torch.allclose(got["hue_hist"].sum(1), torch.ones(len(POINTS)), atol=1e-5)


def batches_of_cli(data, tmp_path, name, *args):
    f = tmp_path / f"{name}.safetensors"
    cli("data", "batches", data, "--out", f, *args)
    from safetensors.torch import load_file

    tensors = load_file(str(f))
    files = [b.split("\n") for b in f.with_suffix(".txt").read_text().strip("\n").split("\n\n")]
    n = len(files)
    return [{k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == str(i)} for i in range(n)], files


KEYS = ["gray", "points", "hue_hist", "chroma_hist", "hue_weight", "chroma_weight", "ab"]


def test_loader_draws_the_batches_of_pretrain(scenes, tmp_path):
    data = scenes / "unlabelled"
    want, files = batches_of_cli(data, tmp_path, "one", "--preset", "cpu-small", "--seed", 3, "--batch-size", 4,
                                 "--count", 3, "--set", "data.points=16")
    loader = colorproxy.ColorizationLoader(data, preset="cpu-small", batch_size=4, seed=3, workers=2,
                                           set={"data.points": 16})
    assert len(loader) == 64 // 4 and loader.images == 64 and loader.batch_size == 4
    got = [b for _, b in zip(range(3), loader)]
    for g, w, f in zip(got, want, files):
        assert g["files"] == f
        for k in KEYS:
            assert g[k].dtype == w[k].dtype and torch.equal(g[k], w[k]), k
    assert got[0]["gray"].shape == (4, 1, 64, 64) and got[0]["points"].shape == (4, 16, 2)
    # Two processes of 2 images each: their shares make the one-process batch of 4, slot by slot.
    shares = [colorproxy.ColorizationLoader(data, preset="cpu-small", batch_size=2, seed=3, rank=r, world_size=2,
                                            set={"data.points": 16}) for r in range(2)]
    for r, share in enumerate(shares):
        first = next(iter(share))
        for k in KEYS:
            assert torch.equal(first[k], want[0][k][2 * r:2 * r + 2]), (r, k)
    # An epoch is len() batches; the next iteration is the next epoch (another order), and
    # set_epoch(0) repeats the first.
    epoch0 = [b["files"] for b in loader_epoch(loader, 0)]
    assert len(epoch0) == len(loader)
    epoch1 = [b["files"] for b in loader]
    assert epoch1 != epoch0
    loader.set_epoch(0)
    assert [b["files"] for b in loader] == epoch0


def loader_epoch(loader, epoch):
    loader.set_epoch(epoch)
    return list(loader)


class TinyColorizer(torch.nn.Module):
    """A small fully convolutional colorizer in plain PyTorch: features at the points -> hue and
    chroma histograms."""

    def __init__(self, bins=32):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
        )
        self.hue = torch.nn.Linear(32, bins)
        self.chroma = torch.nn.Linear(32, bins)

    def forward(self, gray, points):
        f = self.body(gray)  # [B, C, S, S]
        b = torch.arange(f.shape[0])[:, None]
        at = f.permute(0, 2, 3, 1)[b, points[..., 0], points[..., 1]]  # [B, P, C]
        return self.hue(at), self.chroma(at)


def colorization_loss(model, batch):
    """The paper's loss: KL(target || prediction) of each histogram, weighted per point."""
    hue, chroma = model(batch["gray"], batch["points"])

    def kl(logits, target, weight):
        logp = torch.log_softmax(logits, -1)
        t = target.clamp_min(1e-12)
        return ((target * (t.log() - logp)).sum(-1) * weight).mean()

    return kl(hue, batch["hue_hist"], batch["hue_weight"]) + kl(chroma, batch["chroma_hist"], batch["chroma_weight"])


def test_pure_pytorch_loop_on_the_loader_lowers_the_loss(scenes):
    torch.manual_seed(0)
    loader = colorproxy.ColorizationLoader(scenes / "unlabelled", preset="cpu-small", batch_size=8, seed=0)
    held = next(iter(colorproxy.ColorizationLoader(scenes / "unlabelled", preset="cpu-small", batch_size=8, seed=99)))
    model = TinyColorizer()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        before = colorization_loss(model, held).item()
    steps = 0
    while steps < 30:
        for batch in loader:
            loss = colorization_loss(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if steps == 30:
                break
    with torch.no_grad():
        after = colorization_loss(model, held).item()
    assert after < 0.8 * before, (before, after)


@pytest.fixture(scope="session")
def resnet18_run(scenes, tmp_path_factory):
    """A full-width ResNet-18 pretrained for 2 steps (weights and BN statistics off their init)."""
    out = tmp_path_factory.mktemp("r18")
    r = colorproxy.pretrain(scenes / "unlabelled", out, "cpu-resnet18", iterations=2, batch_size=2,
                            set={"model.width": 1.0, "checkpoint_every": 2})
    assert r["iterations"] == 2 and pathlib.Path(r["checkpoint"]).exists()
    return out


def test_load_backbone_gives_the_features_of_the_cli(resnet18_run, scenes, tmp_path):
    ckpt = resnet18_run / "checkpoints" / "last.safetensors"
    f = tmp_path / "feat.safetensors"
    layers = ["conv1", "layer1", "layer2", "layer3", "layer4"]
    cli("features", "--checkpoint", ckpt, "--data", scenes / "unlabelled", "--limit", 3, "--size", 64,
        "--layers", ",".join(layers), "--out", f)
    from safetensors.torch import load_file

    want = load_file(str(f))
    for rgb in [False, True]:
        model, transform = colorproxy.load_backbone(ckpt, rgb=rgb)
        assert transform.channels == (3 if rgb else 1)
        x = want["input"]
        if rgb:
            x = x.expand(-1, 3, -1, -1)
        with torch.no_grad():
            h = model.relu(model.bn1(model.conv1(x)))
            got = {"conv1": h}
            h = model.maxpool(h)
            for name in layers[1:]:
                h = getattr(model, name)(h)
                got[name] = h
        for name in layers:
            scale = want[name].abs().max().item()
            err = (got[name] - want[name]).abs().max().item() / scale
            assert err < 1e-4, (rgb, name, err)
    # The transform is the network's input: the CLI's input tensor from the same image.
    from PIL import Image

    first = pathlib.Path(f.with_suffix(".txt").read_text().split("\n")[0])
    img = Image.open(first).convert("RGB")
    side = min(img.size)
    img = img.resize((round(img.size[0] * 64 / side), round(img.size[1] * 64 / side)), Image.BILINEAR)
    assert transform(img).shape[0] == 3


def test_finetune_and_evaluate_agree(scenes, tmp_path, resnet18_run):
    out = tmp_path / "seg"
    r = colorproxy.finetune("seg", scenes / "voc", out, "random", preset="seg-cpu", iterations=4, seed=0)
    assert r["metric"] == "miou" and 0.0 <= r["value"] <= 1.0
    again = colorproxy.evaluate("seg", out / "checkpoints" / "last.safetensors", scenes / "voc", "val")
    assert again["value"] == r["value"]


def test_bad_input_raises_an_exception_naming_the_file(tmp_path, scenes):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(colorproxy.ColorproxyError, match="broken.jpg"):
        colorproxy.targets(bad, [(0, 0)])
    good = sorted((scenes / "unlabelled").rglob("*.jpg"))[0]
    with pytest.raises(colorproxy.ColorproxyError, match="outside"):
        colorproxy.targets(good, [(10_000, 0)])
    with pytest.raises(colorproxy.ColorproxyError, match="nowhere"):
        colorproxy.ColorizationLoader(tmp_path / "nowhere")
    with pytest.raises(colorproxy.ColorproxyError, match="no-such-preset"):
        colorproxy.ColorizationLoader(scenes / "unlabelled", preset="no-such-preset")
    with pytest.raises(colorproxy.ColorproxyError, match="batch_size"):
        colorproxy.ColorizationLoader(scenes / "unlabelled", batch_size=0)
    with pytest.raises(colorproxy.ColorproxyError, match="missing.safetensors"):
        colorproxy.load_backbone(tmp_path / "missing.safetensors")
    with pytest.raises(colorproxy.ColorproxyError, match="nowhere"):
        colorproxy.pretrain(tmp_path / "nowhere", tmp_path / "run", iterations=1)
    with pytest.raises(colorproxy.ColorproxyError, match=r"rank must be in \[0, 1\], got 2"):
        colorproxy.ColorizationLoader(scenes / "unlabelled", rank=2, world_size=2)


def test_the_readmes_pytorch_loop_runs_as_written(scenes):
    """The README's PyTorch loop on the loader, with its data folder pointed at generated scenes
    and one epoch instead of ten: it runs and its loss stays finite."""
    text = (ROOT / "README.md").read_text()
    start = text.index("```python\nimport torch, colorproxy")
    code = text[start + len("```python\n"):text.index("```", start + 10)]
    assert len(code.strip().splitlines()) <= 20
    code = code.replace('"photos/"', repr(str(scenes / "unlabelled"))).replace("range(10)", "range(1)")
    env = {}
    exec(compile(code, "README.md", "exec"), env)
    assert torch.isfinite(env["loss"]) and env["loss"].item() > 0


def _stop_a_pretraining(scenes, tmp_path, sig, sigint_on_entry):
    """Starts `colorproxy.pretrain` for 1,000,000 iterations in a child Python whose SIGINT is
    `sigint_on_entry` (SIG_DFL: Ctrl-C works; SIG_IGN: a background job), sends `sig` once the run
    has logged, and returns its exit code, its output, the run folder and the call's arguments. The
    child is killed if anything here fails, so no training is left behind."""
    import signal
    import sys
    import time

    run = tmp_path / "run"
    args = f"{str(scenes / 'unlabelled')!r}, {str(run)!r}, batch_size=2, set={{'checkpoint_every': 5, 'data.points': 8}}"
    script = tmp_path / "run.py"
    script.write_text(
        "import colorproxy\n"
        "try:\n"
        f"    colorproxy.pretrain({args}, iterations=1000000)\n"
        "    print('FINISHED')\n"
        "except KeyboardInterrupt as e:\n"
        "    print('INTERRUPTED', e)\n"
    )
    # The signals this test relies on, whatever the suite inherited (pytest started with SIGINT
    # ignored must still test Ctrl-C): set in the child before it execs Python.
    p = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: (signal.signal(signal.SIGINT, sigint_on_entry), signal.signal(signal.SIGTERM, signal.SIG_DFL)),
    )
    try:
        deadline = time.time() + 120
        while not (run / "metrics.jsonl").exists() and time.time() < deadline and p.poll() is None:
            time.sleep(0.2)
        time.sleep(1.0)
        p.send_signal(sig)
        out, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, out, run, args


def test_ctrl_c_writes_a_checkpoint_and_raises_keyboard_interrupt(scenes, tmp_path):
    """SIGINT during `colorproxy.pretrain` (Ctrl-C in Python): the run checkpoints, the call raises
    KeyboardInterrupt with the library's message, the interpreter lives on, and resume=True
    continues from the checkpoint."""
    import signal

    rc, out, run, args = _stop_a_pretraining(scenes, tmp_path, signal.SIGINT, signal.SIG_DFL)
    assert rc == 0, out
    assert "INTERRUPTED interrupted; the run wrote its checkpoint" in out, out
    _check_resume(run, args)


def test_sigterm_writes_a_checkpoint_and_sigint_ignored_on_entry_is_said(scenes, tmp_path):
    """SIGTERM (Slurm's preemption and time limit) during `colorproxy.pretrain` in a process that
    started with SIGINT ignored: the package says at the start that Ctrl-C cannot stop the run,
    SIGTERM checkpoints and raises KeyboardInterrupt naming SIGTERM, and resume=True continues."""
    import signal

    rc, out, run, args = _stop_a_pretraining(scenes, tmp_path, signal.SIGTERM, signal.SIG_IGN)
    assert rc == 0, out
    assert "SIGINT is ignored in this process" in out and "(SIGTERM) writes its checkpoint" in out, out
    assert "INTERRUPTED terminated (SIGTERM); the run wrote its checkpoint" in out, out
    _check_resume(run, args)


def _check_resume(run, args):
    """resume=True continues the stopped run: at least one more iteration, from its checkpoint."""
    import colorproxy

    assert (run / "checkpoints" / "last.safetensors").exists()
    gens = [int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("gen-*")]
    assert gens and gens[0] > 0, gens
    r = eval(f"colorproxy.pretrain({args}, iterations={gens[0] + 1}, resume=True)")
    assert r["iterations"] == gens[0] + 1, r


def test_bad_numbers_are_errors_naming_the_parameter(scenes, photo, tmp_path):
    """Negative, huge, float and bool numbers and an empty point list: a ColorproxyError naming the
    parameter, never a bare OverflowError or a silent truncation."""
    import colorproxy

    cases = [
        (lambda: colorproxy.targets(photo, [(-1, 5)]), "points: y"),
        (lambda: colorproxy.targets(photo, [(5, 2**70)]), "points: x"),
        (lambda: colorproxy.targets(photo, [(5.7, 3)]), "points: y must be an integer, got 5.7"),
        (lambda: colorproxy.targets(photo, []), "points is empty"),
        (lambda: colorproxy.ColorizationLoader(scenes / "unlabelled", batch_size=-2), "batch_size must be in [1,"),
        (lambda: colorproxy.ColorizationLoader(scenes / "unlabelled", workers=2**65), "workers must be in [0,"),
        (lambda: colorproxy.ColorizationLoader(scenes / "unlabelled", rank=3, world_size=2), "rank must be in [0, 1]"),
        (lambda: colorproxy.pretrain(scenes / "unlabelled", tmp_path / "r", batch_size=True), "batch_size must be an integer"),
        (lambda: colorproxy.pretrain(scenes / "unlabelled", tmp_path / "r", iterations=0), "iterations must be in [1,"),
    ]
    for call, want in cases:
        with pytest.raises(colorproxy.ColorproxyError) as e:
            call()
        assert want in str(e.value), (want, str(e.value))
    assert not (tmp_path / "r").exists()
