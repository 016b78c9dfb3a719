"""Scripts of any kind: the '# conda execute' block behind any comment prefix, and conda-script
blocks (pixi's format), run through the built pyz against the stand-in conda."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import conda_execute as ce

CI = os.environ.get("CI") == "true"


def need(program):
    """The path of PROGRAM; skipped if absent, except in CI (where it must be there)."""
    found = shutil.which(program)
    if not found and not CI:
        pytest.skip(f"{program} is not installed")
    assert found, f"{program} is required in CI"
    return found


@pytest.fixture
def run(pyz, conda_root, isolated_env, tmp_path):
    env = conda_root.env_with_conda_on_path(isolated_env)
    env["CONDA_EXECUTE_ENV_DIR"] = str(tmp_path / "envs")

    def run(*args, **kw):
        return subprocess.run([sys.executable, pyz, *args], env=env, capture_output=True,
                              text=True, timeout=180, **kw)

    run.root, run.env_dir = conda_root, tmp_path / "envs" / ce.conda_platform()
    return run


def write(path, text):
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def spec_of(text, filename="s.py"):
    return ce.read_spec(ce.iter_lines(io.BytesIO(text.encode()), filename), filename, filename)


def error_of(text, filename="s.py"):
    with pytest.raises(ce.UsageError) as info:
        spec_of(text, filename)
    return info.value


# ------------------------------------------------------------ our block behind any prefix


@pytest.mark.parametrize("prefix", ["#", "//", "--", ";", ";;", "%", "!", "'", "%%", "#'"])
def test_any_comment_prefix(prefix):
    text = (f"first line\n  {prefix} conda execute:\n{prefix} env:\n{prefix}   - mylib >=1\n"
            f"{prefix}  channels: [local]  # a comment\n{prefix} # a comment line\n"
            f"{prefix} run_with: [tool, -x]\nafter = 1\n")
    spec = spec_of(text)
    assert (spec.env, spec.channels, spec.run_with, spec.line) == (
        ("mylib >=1",), ("local",), ("tool", "-x"), 2)


@pytest.mark.parametrize("text,line,message", [
    ("// conda execute\n// env: [mylib]\n# run_with: [x]\n", None, None),  # '#' ends a // block
    ("-- conda execute\n--- env: [mylib]\n", 2, "list item without a 'key:'"),
    ("// conda execute\n//env: [mylib]\n", None, None),
    ("REM conda execute\nREM env: [mylib]\n", 0, "no '# conda execute' metadata block"),
    ("//conda execute\n// env: [mylib]\n", 0, "no '# conda execute' metadata block"),
])
def test_prefix_edges(text, line, message):
    if message is None:
        spec = spec_of(text, "s.js")
        assert spec.env == ("mylib",) and spec.run_with == ("node",)
        return
    error = error_of(text)
    assert error.line == line and message in error.message


@pytest.mark.parametrize("filename,run_with", [
    ("a.js", ["node"]), ("a.cjs", ["node"]), ("a.ts", ["deno", "run"]), ("a.lua", ["lua"]),
    ("a.R", ["Rscript"]), ("a.jl", ["julia"]), ("a.pl", ["perl"]), ("a.rb", ["ruby"]),
    ("a.awk", ["awk", "-f"]), ("a.hs", ["runghc"]), ("a.el", ["emacs", "--script"]),
])
def test_default_run_with_by_extension(filename, run_with):
    assert list(spec_of("// conda execute\n// env: [mylib]\n", filename).run_with) == run_with


def test_javascript_with_a_slash_block(run, tmp_path):
    need("node")
    script = write(tmp_path / "hello.js", """
        #!/usr/bin/env conda-execute
        // conda execute
        // env: [mylib]
        const args = process.argv.slice(2);
        console.log("node ran with", JSON.stringify(args), process.env.CONDA_PREFIX !== undefined);
        process.exit(3);
    """)
    proc = run(script, "a b", "-x")
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == 'node ran with ["a b","-x"] true\n'
    assert len(run.root.calls("create")) == 1
    assert run.root.calls("create")[0]["argv"][-1] == "mylib"
    again = run(script)
    assert again.returncode == 3 and len(run.root.calls("create")) == 1


def test_sql_with_a_dash_block(run, tmp_path):
    need("sqlite3")
    script = write(tmp_path / "query.sql", """
        -- conda execute
        -- env: [mylib]
        -- run_with: [sh, -c, 'sqlite3 -batch :memory: < "$0"']
        SELECT 6 * 7;
    """)
    proc = run(script)
    assert (proc.returncode, proc.stdout) == (0, "42\n"), proc.stderr


# ------------------------------------------------------------ conda-script blocks (pixi's)


def dry(run, script, *args):
    proc = run("--dry-run", script, *args)
    assert proc.returncode == 0, proc.stderr
    assert run.root.calls() == [] and not run.env_dir.exists()
    return json.loads(proc.stdout)


# The metadata blocks of pixi's documented examples (docs/source_files/conda_scripts/), with
# bodies of our own: (file name, block, expected specs, channels, entrypoint as shown).
CF = "https://prefix.dev/conda-forge"
PIXI_EXAMPLES = [
    ("main.R", "#", ["r-base", "r-jsonlite"], ["Rscript", "{SCRIPT}"], 'r-base = "*"\n'
     'r-jsonlite = "*"', 'entrypoint = "Rscript ${SCRIPT}"', [CF], "print(1)"),
    ("main.c", "//", ["gcc", "glib", "pkg-config"],
     ["gcc", "-o", "{CACHE}/main", "{SCRIPT}", "$(pkg-config --cflags --libs glib-2.0)", "&&",
      "{CACHE}/main"], 'gcc = "*"\nglib = "*"\npkg-config = "*"',
     'entrypoint = "gcc -o ${CACHE}/main ${SCRIPT} $(pkg-config --cflags --libs glib-2.0) && '
     '${CACHE}/main"', [CF], "int main(void) { return 0; }"),
    ("main.cpp", "//", ["gxx", "fmt"], ["g++", "-o", "{CACHE}/main", "{SCRIPT}", "-lfmt", "&&",
     "{CACHE}/main"], 'gxx = "*"\nfmt = "*"',
     'entrypoint = "g++ -o ${CACHE}/main ${SCRIPT} -lfmt && ${CACHE}/main"', [CF],
     "int main() {}"),
    ("main.f90", "!", ["gfortran", "liblapack"], ["gfortran", "-o", "{CACHE}/main", "{SCRIPT}",
     "-llapack", "-lblas", "&&", "{CACHE}/main"], 'gfortran = "*"\nliblapack = "*"',
     'entrypoint = "gfortran -o ${CACHE}/main ${SCRIPT} -llapack -lblas && ${CACHE}/main"',
     [CF], "end program"),
    ("main.py", "#", ["python", "pyyaml"], ["python", "{SCRIPT}"], 'python = "*"\n'
     'pyyaml = "*"', 'entrypoint = "python ${SCRIPT}"', [CF], "print(1)"),
    ("main.ts", "//", ["deno"], ["deno", "run", "{SCRIPT}"], 'deno = "*"',
     'entrypoint = "deno run ${SCRIPT}"', [CF], "console.log(1)"),
    ("main.cs", "//", ["dotnet"], ["dotnet", "run", "{SCRIPT}"], 'dotnet = "*"',
     'entrypoint = "dotnet run ${SCRIPT}"', [CF], "Console.WriteLine(1);"),
    ("main.main.kts", "//", ["kotlin"], ["kotlin", "{SCRIPT}"], 'kotlin = "*"',
     'entrypoint = "kotlin ${SCRIPT}"', [CF], "println(1)"),
    ("main.mojo", "#", ["mojo ==1.0.0", "emberjson"], ["mojo", "{SCRIPT}"],
     'mojo = "==1.0.0"\nemberjson = "*"', 'entrypoint = "mojo ${SCRIPT}"',
     ["https://prefix.dev/modular-community", "https://conda.modular.com/max", CF], "def main(): pass"),
]


@pytest.mark.parametrize("example", PIXI_EXAMPLES, ids=[e[0] for e in PIXI_EXAMPLES])
def test_pixi_documented_examples(run, tmp_path, example):
    name, prefix, specs, shown, deps, entry, channels, body = example
    channel_lines = ("channels = [\n" + "".join(f'    "{c}",\n' for c in channels) + "]"
                     if len(channels) > 1 else f'channels = ["{channels[0]}"]')
    toml = f"{channel_lines}\n{entry}\n\n[dependencies]\n{deps}"
    block = [f"{prefix} /// conda-script"] + [f"{prefix} {t}" if t else prefix
                                               for t in toml.split("\n")]
    path = tmp_path / name
    path.write_text("\n".join([*block, f"{prefix} /// end-conda-script", body]) + "\n")
    out = dry(run, str(path), "in.txt", "--verbose")
    assert out["env"] == specs and out["channels"] == channels and out["run_with"] == []
    cache = os.path.join(out["prefix"], ".conda-execute-cache")
    words = [w.replace("{SCRIPT}", str(path)) for w in shown]
    commands = [[]]
    for word in words:
        if word == "&&":
            commands.append([])
        else:
            commands[-1].append(word)
    got = [[w.replace(os.path.dirname(w), "{CACHE}") if w.startswith(cache) else w for w in c]
           for c in out["entrypoint"]]
    assert got == [*commands[:-1], commands[-1] + ["in.txt", "--verbose"]]
    assert out["command"] == out["entrypoint"][-1]


def channel_block(channel, entrypoint, deps="mylib = \"*\"", prefix="#"):
    toml = f'channels = ["{channel}"]\n{entrypoint}\n\n[dependencies]\n{deps}'
    lines = [f"{prefix} {t}" if t else prefix for t in toml.split("\n")]
    return "\n".join([f"{prefix} /// conda-script", *lines, f"{prefix} /// end-conda-script"])


def test_shell_script_with_an_entrypoint_table_and_substitutions(run, channel, tmp_path):
    block = channel_block(channel.url, textwrap.dedent("""\
        entrypoint = {
          osx = "false",   # TOML 1.1: a table over lines, comments, a trailing comma
          unix = "bash ${SCRIPT} $(tool) \\"$(echo '  two  words ')\\" pre$(printf 'a b')post",
          win = "cmd /c ${SCRIPT}",
        }"""), 'tool = { version = "1.*", build = "0" }\nmylib = "*"')
    script = tmp_path / "show.sh"
    script.write_text(block + '\nfor a in "$@"; do echo "[$a]"; done\nexit 4\n')
    proc = run(str(script), "last arg")
    assert proc.returncode == 4, proc.stderr
    assert proc.stdout == "[tool]\n[1.0]\n[  two  words ]\n[prea]\n[bpost]\n[last arg]\n"
    create = run.root.calls("create")
    assert len(create) == 1
    assert create[0]["argv"][-2:] == ["tool 1.* 0", "mylib"]
    assert ["--override-channels", "-c", channel.url] == create[0]["argv"][-6:-3]


def test_c_program_compiled_once_in_cache(run, channel, tmp_path):
    need("gcc")
    compile_once = ("sh -c 'test \\\"$1\\\" -nt \\\"$0\\\" || exec gcc -o \\\"$1\\\" \\\"$0\\\"' "
                    "${SCRIPT} ${CACHE}/main && ${CACHE}/main")
    block = channel_block(channel.url, f'entrypoint = {{ unix = "{compile_once}" }}',
                          prefix="//")
    script = tmp_path / "hello.c"
    script.write_text(block + textwrap.dedent("""
        #include <stdio.h>
        int main(int argc, char **argv) {
            printf("hello from C, %d args, first %s\\n", argc - 1, argc > 1 ? argv[1] : "-");
            return 7;
        }
    """))
    first = run(str(script), "x y")
    assert (first.returncode, first.stdout) == (7, "hello from C, 1 args, first x y\n"), \
        first.stderr
    prefix = next(p for p in run.env_dir.iterdir() if p.is_dir() and len(p.name) == 20)
    caches = list((prefix / ".conda-execute-cache").iterdir())
    assert len(caches) == 1 and oct(caches[0].stat().st_mode & 0o777) == "0o700"
    assert oct((prefix / ".conda-execute-cache").stat().st_mode & 0o777) == "0o700"
    binary = caches[0] / "main"
    before = binary.stat()
    second = run(str(script))
    assert (second.returncode, second.stdout) == (7, "hello from C, 0 args, first -\n")
    after = binary.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # reused
    assert len(run.root.calls("create")) == 1


def test_a_failing_step_stops_the_run_with_its_code(run, channel, tmp_path):
    block = channel_block(channel.url, 'entrypoint = "sh -c \'exit 5\' && touch ${CACHE}/x"')
    script = tmp_path / "s.sh"
    script.write_text(block + "\n")
    proc = run(str(script))
    assert proc.returncode == 5 and proc.stdout == "", proc.stderr
    assert not list(run.env_dir.glob("*/.conda-execute-cache/*/x"))
    sub = tmp_path / "t.sh"
    sub.write_text(channel_block(channel.url, 'entrypoint = "echo $(sh -c \'exit 3\')"') + "\n")
    proc = run(str(sub))
    assert proc.returncode == 3 and proc.stderr.endswith(
        f"{sub}:3: entrypoint: $(sh -c exit 3) exited with 3\n"), proc.stderr


def test_lock_works_for_conda_scripts(run, channel, tmp_path):
    script = tmp_path / "s.sh"
    script.write_text(channel_block(channel.url, 'entrypoint = "bash ${SCRIPT}"',
                                    'tool = "*"') + "\ntool\n")
    assert run("--lock", str(script)).returncode == 0
    lock = (tmp_path / "s.sh.conda-lock").read_text()
    assert "/tool-2.0-" in lock
    proc = run("--locked", str(script))
    assert (proc.returncode, proc.stdout) == (0, "tool 2.0\n"), proc.stderr
    created = run.root.calls("create")[-1]["argv"]  # from the lock's list for here
    assert created[-2] == "--file" and created[-1].endswith(".explicit")
    # the entrypoint is not part of the env's identity: the lock still matches
    script.write_text(script.read_text().replace("bash ${SCRIPT}", "sh ${SCRIPT}"))
    assert run("--locked", str(script)).returncode == 0


def test_identity_is_channels_and_dependencies():
    def spec(entry, deps='a = "*"', channels='"x", "y"'):
        return spec_of(f'# /// conda-script\n# channels = [{channels}]\n# entrypoint = "{entry}"'
                       f'\n# [dependencies]\n# {deps}\n# /// end-conda-script\n', "s.sh")

    base = ce.env_name(spec("bash ${SCRIPT}"))
    assert ce.env_name(spec("sh ${SCRIPT} && true")) == base
    assert ce.env_name(spec("bash ${SCRIPT}", channels='"y", "x"')) != base
    assert ce.env_name(spec("bash ${SCRIPT}", deps='a = "1.*"')) != base


@pytest.mark.parametrize("value,expected", [
    ('"*"', "pkg"), ('">=1.2, <2"', "pkg >=1.2,<2"), ('{ }', "pkg"),
    ('{ version = "1.*", build = "py*" }', "pkg 1.* py*"),
    ('{ build = "h1_0" }', "pkg * h1_0"),
    ('{ channel = "bioconda", version = "2.*" }', "bioconda::pkg 2.*"),
    ('{ version = "1.*", build-number = 3 }', "pkg[version='1.*',build_number=3]"),
    ('{ subdir = "noarch", md5 = "' + "a" * 32 + '" }', f"pkg[subdir=noarch,md5={'a' * 32}]"),
    ('{ sha256 = "' + "b" * 64 + '" }', f"pkg[sha256={'b' * 64}]"),
    ('{ url = "https://x.org/pkg-1-0.conda", md5 = "' + "c" * 32 + '" }',
     f"https://x.org/pkg-1-0.conda#{'c' * 32}"),
    ('{ version = "*", when = "__unix" }', "pkg" if os.name != "nt" else None),
    ('{ version = "*", when = "__win" }', None if os.name != "nt" else "pkg"),
])
def test_dependency_forms(value, expected):
    spec = spec_of(f'# /// conda-script\n# channels = ["c"]\n# entrypoint = "x"\n'
                   f'# [dependencies]\n# pkg = {value}\n# /// end-conda-script\n', "s.sh")
    assert spec.env == ((expected,) if expected else ())
