"""Careless-user audit of the command line (issue 18): devices, output paths, `--set` values, numbers,
configs without [[sae]], a sweep with a failed trial, absurd SAE sizes. Each input is run in process
through `synthsae.cli.main` (the memory cases in a subprocess under a 6 GiB address-space limit) and
classified: error (exit 2 with one `synthsae: error:` line, or a ConfigError in Python), traceback
(an exception escaped), silent (exit 0 for a mistake), ok (a valid input). Whether an error message
is clear was judged by reading them; the unclear ones are listed in UNCLEAR below.

    PYTHONPATH=<tree> python benchmarks/audit_cli_inputs.py <tree> results.json   # a tree: a checkout
    python benchmarks/audit_cli_inputs.py --summary results.json

Takes minutes (the valid inputs train tiny SAEs).
"""

import contextlib, io, json, os, sys, tempfile, traceback, subprocess
from pathlib import Path

def _main():
    tree = Path(sys.argv[1])
    CONF = tree / "configs" / "topk_vs_relu.toml"
    SWEEP = tree / "configs" / "sweep_l1.toml"
    TINY = ["--set", "train.n_samples=512", "--set", "train.batch_size=256", "--set", "train.lr_decay_steps=0",
            "--set", "eval.n=256", "--set", "plots=false", "--set", "sae[0].m=16", "--set", "sae[1].m=16",
            "--set", 'eval.metrics=["reconstruction"]', "--quiet"]
    from synthsae.cli import main

    def run_cli(argv):
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main(argv)
        except SystemExit as e:
            rc = e.code
        except BaseException as e:
            return "traceback", f"{type(e).__name__}: {e}"[:200]
        return rc, (err.getvalue().strip().splitlines() or [""])[-1][:200]

    cases = []  # (area, name, argv-builder(tmp) or callable, expect_error)
    def case(area, name, expect_error=True):
        def deco(fn):
            cases.append((area, name, fn, expect_error)); return fn
        return deco

    # ---- devices
    PATHCMDS = {
        "run": lambda t, o: ["run", str(CONF), "--out", o, *TINY],
        "demo": lambda t, o: ["demo", "--out", o, "--samples", "2048", "--eval-samples", "256", "--variants", "topk", "--no-plots", "--quiet"],
        "evaluate": lambda t, o: ["evaluate", str(t / "sae"), "--world", "toy", "--n", "256", "--out", o],
        "world": lambda t, o: ["world", "toy", "--save", o],
        "sweep": lambda t, o: ["sweep", str(SWEEP), "--out", o, "--executor", "serial", "--set", "sweep.seeds=[0]", "--set",
                               'sweep.grid={"sae.l1_coefficient" = [1e-3]}', "--set", "sae.m=16", "--set", "train.n_samples=512",
                               "--set", "train.batch_size=256", "--set", "eval.n=256", "--set", "plots=false", "--quiet"],
    }
    for dev in ["gpu", "GPU", "cuda", "cuda:7", "cuda:-1", "mps", "xla", "", "cpux", "0", "cuda:a", "meta", "cpu:0"]:
        for cmd in ("run", "evaluate", "demo", "sweep"):
            cases.append(("device", f"{cmd} --device {dev!r}",
                          (lambda t, cmd=cmd, dev=dev: PATHCMDS[cmd](t, str(t / "o")) + ["--device", dev]), dev != "cpu:0"))
    for dev in ["gpu", "cuda", "meta", 'cuda:7']:
        cases.append(("device", f"toml device = {dev!r}", lambda t, dev=dev: ["run", str(CONF), "--set", f'device="{dev}"',
                                                                             "--out", str(t / "o"), *TINY], True))

    # ---- python API devices
    def api(fn):
        def go(t):
            try:
                fn(); return 0, "returned"
            except ValueError as e:
                return 2, f"ValueError: {e}"[:200]
            except BaseException as e:
                return "traceback", f"{type(e).__name__}: {e}"[:200]
        return go
    import torch
    def _sc(dev):
        from synthsae.solvers import sparse_code
        sparse_code(torch.randn(4, 8, dtype=torch.float64), torch.randn(6, 8, dtype=torch.float64), 0.1, device=dev)
    def _rd(dev):
        from synthsae._rng import resolve_device; resolve_device(dev)
    def _world(dev):
        from synthsae.world import World; World.preset("toy").sample(4, device=dev)
    for dev in ["gpu", "cuda", "cuda:3", "meta", "xla", "", 3.5]:
        cases.append(("device-api", f"sparse_code(device={dev!r})", ("api", lambda dev=dev: _sc(dev)), True))
        cases.append(("device-api", f"resolve_device({dev!r})", ("api", lambda dev=dev: _rd(dev)), True))
        cases.append(("device-api", f"World.sample(device={dev!r})", ("api", lambda dev=dev: _world(dev)), True))

    # ---- paths
    def afile(t):
        p = t / "f.txt"; p.write_text("keep me"); return p
    def save_sae(t):
        from synthsae.sae.base import make
        make("topk", 32, 16, k=2).save(t / "sae")
    for name, build in PATHCMDS.items():
        cases.append(("paths", f"{name} out=existing file", lambda t, b=build: b(t, str(afile(t))), True))
        cases.append(("paths", f"{name} out=under a file", lambda t, b=build: b(t, str(afile(t) / "sub")), True))
        cases.append(("paths", f"{name} out=under /proc/version", lambda t, b=build: b(t, "/proc/version/x"), True))
        cases.append(("paths", f"{name} out=/proc (unwritable)", lambda t, b=build: b(t, "/proc/sae18x"), True))
    for argv in (["run", "{t}/missing.toml"], ["run", "{t}/dir.toml"], ["run", "{t}/bin.toml"], ["run", "{t}/bad.toml"],
                 ["sweep", "{t}/missing.toml"], ["sweep", "{t}/dir.toml"], ["evaluate", "{t}/nosae", "--world", "toy"],
                 ["evaluate", "{t}/sae", "--world", "{t}/nowhere"], ["evaluate", "{t}/sae", "--world", "{t}/f.txt"],
                 ["evaluate", "{t}/badsae", "--world", "toy"], ["run", "{t}/empty.json"], ["run", "{t}/list.json"]):
        def mk(t, argv=argv):
            (t / "dir.toml").mkdir(); (t / "bin.toml").write_bytes(b"\xff\xfe\x00\x81"); (t / "bad.toml").write_text("x = [")
            (t / "empty.json").write_text(""); (t / "list.json").write_text("[1, 2]"); afile(t)
            (t / "badsae").mkdir(); (t / "badsae" / "config.json").write_text("{"); (t / "badsae" / "model.safetensors").write_text("x")
            return [a.replace("{t}", str(t)) for a in argv]
        cases.append(("paths", " ".join(argv).replace("{t}/", ""), mk, True))

    # ---- --set numbers and values
    SETS = ['train.lr="1e-3"', "train.lr=abc", 'train.n_samples="2048"', 'sae[0].k="4"', 'sae[0].m="16"', 'seed="0"',
            'world.seed="3"', 'world.d="32"', 'eval.n="256"', 'train.betas=["0.9", 0.99]', "train.lr=nan", "train.lr=inf",
            "train.lr=-inf", "sae[0].k=1e400", "train.n_samples=1e3", "sae[0].k=2.5", "sae[0].k=true", "world.seed=-1",
            'world.noise={kind = "gaussian", std = "0.1"}', "world.m=0", "sae[0].dead_after_steps=\"5\"",
            'sae[0].sparsity_warmup_steps="1"', 'sae[0].seed="1"', "sae[1].l1_coefficient=\"1e-3\"", "train.grad_clip=\"1\"",
            'train.resample_every="10"', 'train.log_every="10"', 'train.lr_warmup_steps="1"', "train.seed=\"1\"",
            'world.firing={kind = "bernoulli", p = "0.1"}', "plots=1", "name=3", "sae[5].k=3", "sae[0]=3", "train=3",
            "world.preset=3", 'world.preset="nope"', "eval.n=-5", 'eval.metrics="recovery"', 'eval.metrics=["nope"]']
    for s in SETS:
        cases.append(("--set", f"--set {s}", lambda t, s=s: ["run", str(CONF), "--print-config", *TINY, "--set", s], True))

    # ---- numbers on the command line
    NUMS = [["demo", "--samples", "-5"], ["demo", "--samples", "abc"], ["demo", "--eval-samples", "0"], ["demo", "--seed", "-1"],
            ["demo", "--variants", ""], ["demo", "--variants", ",,,"], ["evaluate", "{t}/sae", "--world", "toy", "--n", "0"],
            ["evaluate", "{t}/sae", "--world", "toy", "--n", "-3"], ["evaluate", "{t}/sae", "--world", "toy", "--seed", "-1"],
            ["evaluate", "{t}/sae", "--world", "toy", "--world-seed", "-1"], ["sweep", str(SWEEP), "--workers", "0"],
            ["world", "toy", "--seed", "-1"], ["world", "toy", "--seed", "99999999999999999999999"], ["run", "x", "--threads", "-1"]]
    for argv in NUMS:
        def mk(t, argv=argv):
            save_sae(t); return [a.replace("{t}", str(t)) for a in argv] + (["--out", str(t / "o")] if argv[0] in ("demo", "sweep") else [])
        cases.append(("numbers", " ".join(argv).replace("{t}/", ""), mk, True))

    # ---- configs
    @case("config", "TOML with no [[sae]]")
    def _(t):
        (t / "c.toml").write_text('[world]\npreset = "toy"\n[train]\nn_samples = 512\nbatch_size = 256\n[eval]\nn = 256\n')
        return ["run", str(t / "c.toml"), "--print-config"]
    @case("config", "TOML with sae = []")
    def _(t):
        (t / "c.toml").write_text('sae = []\n')
        return ["run", str(t / "c.toml"), "--print-config"]
    @case("config", "empty TOML")
    def _(t):
        (t / "c.toml").write_text('')
        return ["run", str(t / "c.toml"), "--print-config"]

    # ---- sweep exit status
    @case("sweep", "sweep with a failing trial exits non-zero")
    def _(t):
        return PATHCMDS["sweep"](t, str(t / "o")) + ["--set", "train.lr=1e9", "--set", 'sweep.grid={"sae.l1_coefficient" = [1e3]}']

    # ---- memory
    def mem(code):
        def go(t):
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                               preexec_fn=lambda: __import__("resource").setrlimit(__import__("resource").RLIMIT_AS, (6 << 30, 6 << 30)))
            last = (r.stderr.strip().splitlines() or [""])[-1][:200]
            if r.returncode == 0: return 0, "returned"
            if "Traceback" in r.stderr and "synthsae.errors" not in last and "ConfigError" not in last and not last.startswith("ValueError"):
                return "traceback", last
            return 2, last
        return go
    for d, m in [(10**9, 16), (10**6, 10**6), (2**40, 2)]:
        cases.append(("memory", f"make('topk', d={d}, m={m})", ("raw", mem(f"from synthsae.sae.base import make; make('topk', {d}, {m}, k=1)")), True))
    cases.append(("memory", "run --set world.d=1e9", lambda t: ["run", str(CONF), "--set", "world.d=1000000000", *TINY, "--out", str(t / "o")], True))

    def cli_sub(argv):  # in a subprocess: a huge --threads crashed the interpreter before the fix
        def go(t):
            r = subprocess.run([sys.executable, "-c", f"from synthsae.cli import main; raise SystemExit(main({argv!r}))"],
                               capture_output=True, text=True, timeout=120, cwd=t)
            last = (r.stderr.strip().splitlines() or [""])[-1][:200]
            if r.returncode == 2 and last.startswith("synthsae: error:") and "Traceback" not in r.stderr:
                return 2, last
            return (0, "returned") if r.returncode == 0 else ("traceback", f"rc {r.returncode}: {last}")
        return go
    for n in ["100000", "4294967296", str(2**70)]:
        cases.append(("threads", f"run --threads {n}", ("raw", cli_sub(["run", "nosuchrecipe", "--threads", n])), True))
    cases.append(("paths", "world --save ''", lambda t: ["world", "toy", "--save", ""], True))

    results = []
    for area, name, fn, expect_error in cases:
        with tempfile.TemporaryDirectory() as td:
            t = Path(td)
            cwd = os.getcwd(); os.chdir(t)
            try:
                if isinstance(fn, tuple):
                    rc, msg = (api(fn[1]) if fn[0] == "api" else fn[1])(t)
                else:
                    try:
                        argv = fn(t)
                    except Exception as e:
                        rc, msg = "setup", repr(e)
                    else:
                        if any(a.startswith(str(t / "sae")) for a in argv) and not (t / "sae").exists():
                            save_sae(t)
                        rc, msg = run_cli(argv)
                kept = (t / "f.txt").read_text() == "keep me" if (t / "f.txt").exists() else None
            finally:
                os.chdir(cwd)
        cls = ("traceback" if rc == "traceback" else "setup" if rc == "setup" else
               "error" if rc == 2 else "ok" if rc == 0 else f"rc={rc}")
        if expect_error and cls == "ok": cls = "silent"
        if kept is False: cls += "+dataloss"
        results.append({"area": area, "case": name, "class": cls, "msg": msg})
        print(f"{area:10} {cls:10} {name:45} | {msg}", flush=True)
    json.dump(results, open(sys.argv[2], "w"), indent=1)

UNCLEAR = ["Overflow when unpacking", "cannot change memory protections", "Overflow when unpacking long", "codec can't decode", "dir.toml does not exist",
           "[Errno 2] No such file or directory: '/proc", "cannot change memory protections"]


def summarize(path):
    import collections

    rows = collections.defaultdict(collections.Counter)
    for x in json.load(open(path)):
        c = x["class"]
        if c == "error" and any(u in x["msg"] for u in UNCLEAR):
            c = "unclear"
        if c == "rc=1":  # a sweep with a failed trial: exit 1 with its error line is the intended outcome
            c = "error"
        rows[x["area"]][c] += 1
    print("| area | inputs | good error | unclear | silently wrong | traceback | ok (valid input) |")
    for area, c in rows.items():
        print(f"| {area} | {sum(c.values())} | {c['error']} | {c['unclear']} | {c['silent']} | {c['traceback']} | {c['ok']} |")


if __name__ == '__main__':
    if sys.argv[1] == '--summary':
        summarize(sys.argv[2])
    else:
        _main()
