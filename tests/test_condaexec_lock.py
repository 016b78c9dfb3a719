"""Issue 22: the lock conda-exec 0.4 embeds in a script ('conda exec --lock --embed').

conda-exec writes, after the script's metadata block, a '# /// conda-exec-lock' block closed by
'# ///'; each content line is '# ' + text ('#' alone for an empty line). The content is an
input-digest comment line and a rattler-lock v6 document exported by conda-lockfiles through
conda's ruamel.yaml settings (jezdez/conda-exec conda_exec/lockfile.py, write_embedded;
conda/conda-lockfiles conda_lockfiles/rattler_lock/v6.py, multiplatform_export).
"""

from __future__ import annotations

import os
import re
from typing import List, Tuple

import pytest

import conda_execute as draft  # the reader lives in the module; "draft" kept for brevity

conda_exec_lock = draft.conda_exec_lock
CondaExecLockError = draft.UsageError  # the module's one error type, at the lock's line

CF = "https://conda.anaconda.org/conda-forge"

# What conda-lockfiles' exporter gives for a two-platform env (real conda-forge records; the
# libgcc license lengthened so that it folds): conda's ruamel settings (mapping=2, sequence=4,
# offset=2, width 80) put every URL on a line of its own below 'conda:'. ruamel leaves a space
# at the end of 'conda:' and of a folded line; conda-execute strips it (see test_trailing_spaces).
CONDA_EXEC_YAML = """\
version: 6
environments:
  default:
    channels:
      - url: https://conda.anaconda.org/conda-forge/
    packages:
      linux-64:
        - conda:
            https://conda.anaconda.org/conda-forge/linux-64/_openmp_mutex-4.5-20_gnu.conda
        - conda:
            https://conda.anaconda.org/conda-forge/linux-64/bzip2-1.0.8-hda65f42_9.conda
        - conda:
            https://conda.anaconda.org/conda-forge/noarch/ca-certificates-2026.5.20-hbd8a1cb_0.conda
        - conda:
            https://conda.anaconda.org/conda-forge/linux-64/libgcc-15.2.0-he0feb66_19.conda
        - conda:
            https://conda.anaconda.org/conda-forge/linux-64/libgomp-15.2.0-he0feb66_19.conda
        - conda:
            https://conda.anaconda.org/conda-forge/noarch/tzdata-2025c-hc9c84f9_1.conda
      osx-arm64:
        - conda:
            https://conda.anaconda.org/conda-forge/osx-arm64/bzip2-1.0.8-hd037594_9.conda
        - conda:
            https://conda.anaconda.org/conda-forge/noarch/ca-certificates-2026.5.20-hbd8a1cb_0.conda
        - conda:
            https://conda.anaconda.org/conda-forge/noarch/tzdata-2025c-hc9c84f9_1.conda
packages:
  - conda:
      https://conda.anaconda.org/conda-forge/linux-64/_openmp_mutex-4.5-20_gnu.conda
    sha256: 1dd3fffd892081df9726d7eb7e0dea6198962ba775bd88842135a4ddb4deb3c9
    md5: a9f577daf3de00bca7c3c76c0ecbd1de
    license: BSD-3-Clause
    license_family: BSD
    size: 28948
    depends:
      - __glibc >=2.17,<3.0.a0
      - libgomp >=7.5.0
    constrains:
      - openmp_impl <0.0a0
  - conda:
      https://conda.anaconda.org/conda-forge/linux-64/bzip2-1.0.8-hda65f42_9.conda
    sha256: 0b75d45f0bba3e95dc693336fa51f40ea28c980131fec438afb7ce6118ed05f6
    md5: d2ffd7602c02f2b316fd921d39876885
    license: bzip2-1.0.6
    license_family: BSD
    size: 260182
    depends:
      - __glibc >=2.17,<3.0.a0
      - libgcc >=14
  - conda:
      https://conda.anaconda.org/conda-forge/osx-arm64/bzip2-1.0.8-hd037594_9.conda
    sha256: 540fe54be35fac0c17feefbdc3e29725cce05d7367ffedfaaa1bdda234b019df
    md5: 620b85a3f45526a8bc4d23fd78fc22f0
    license: bzip2-1.0.6
    license_family: BSD
    size: 124834
    depends:
      - __osx >=11.0
  - conda:
      https://conda.anaconda.org/conda-forge/noarch/ca-certificates-2026.5.20-hbd8a1cb_0.conda
    sha256: 9812a303a1395e1dafbd92e5bc8a1ff6013bcbba0a09c7f03a8d23e43560aa9b
    md5: 489b8e97e666c93f68fdb35c3c9b957f
    license: ISC
    size: 129868
    depends:
      - __unix
  - conda:
      https://conda.anaconda.org/conda-forge/linux-64/libgcc-15.2.0-he0feb66_19.conda
    sha256: 8e0a3b5e41272e5678499b5dfc4cddb673f9e935de01eb0767ce857001229f46
    md5: 57736f29cc2b0ec0b6c2952d3f101b6a
    license: GPL-3.0-only WITH GCC-exception-3.1 AND LGPL-2.1-or-later AND MIT
      AND BSD-3-Clause
    license_family: GPL
    size: 1041084
    depends:
      - __glibc >=2.17,<3.0.a0
      - _openmp_mutex >=4.5
    constrains:
      - libgcc-ng ==15.2.0=*_19
      - libgomp 15.2.0 he0feb66_19
  - conda:
      https://conda.anaconda.org/conda-forge/linux-64/libgomp-15.2.0-he0feb66_19.conda
    sha256: 5abe4ab9d93f6c9757d654f1969ae2267d4505315c1f2f8fe705fd60af084f1b
    md5: faac990cb7aedc7f3a2224f2c9b0c26c
    license: GPL-3.0-only WITH GCC-exception-3.1
    license_family: GPL
    size: 603817
    depends:
      - __glibc >=2.17,<3.0.a0
  - conda:
      https://conda.anaconda.org/conda-forge/noarch/tzdata-2025c-hc9c84f9_1.conda
    sha256: 1d30098909076af33a35017eed6f2953af1c769e273a0626a04722ac4acaba3c
    md5: ad659d0a2b3e47e38d829aa8cad2d610
    license: LicenseRef-Public-Domain
    size: 119135
"""

# The same kind of lock as pixi writes it (serde: the dash under the key, single quotes), with
# PyPI packages: a wheel for each platform (the osx-arm64 numpy record is rattler's test data;
# the linux-64 wheel and hashes are illustrative) and a conda package only one platform has.
PIXI_YAML = """\
version: 6
environments:
  default:
    channels:
    - url: https://conda.anaconda.org/conda-forge/
    indexes:
    - https://pypi.org/simple
    packages:
      linux-64:
      - conda: https://conda.anaconda.org/conda-forge/linux-64/bzip2-1.0.8-hda65f42_9.conda
      - conda: https://conda.anaconda.org/conda-forge/noarch/tzdata-2025c-hc9c84f9_1.conda
      - pypi: https://files.pythonhosted.org/packages/aa/bb/numpy-2.2.1-cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
      - pypi: https://files.pythonhosted.org/packages/cc/dd/six-1.17.0-py2.py3-none-any.whl
      osx-arm64:
      - conda: https://conda.anaconda.org/conda-forge/osx-arm64/bzip2-1.0.8-hd037594_9.conda
      - conda: https://conda.anaconda.org/conda-forge/noarch/tzdata-2025c-hc9c84f9_1.conda
      - pypi: https://files.pythonhosted.org/packages/8c/40/5792ccccd91d45e87d9e00033abc4f6ca8a828467b193f711139ff1f1cd9/numpy-2.2.1-cp313-cp313-macosx_11_0_arm64.whl
packages:
- conda: https://conda.anaconda.org/conda-forge/linux-64/bzip2-1.0.8-hda65f42_9.conda
  sha256: 0b75d45f0bba3e95dc693336fa51f40ea28c980131fec438afb7ce6118ed05f6
  md5: d2ffd7602c02f2b316fd921d39876885
  depends:
  - __glibc >=2.17,<3.0.a0
  - libgcc >=14
  license: bzip2-1.0.6
  license_family: BSD
  purls: []
  size: 260182
  timestamp: 1771350215188
- conda: https://conda.anaconda.org/conda-forge/osx-arm64/bzip2-1.0.8-hd037594_9.conda
  sha256: 540fe54be35fac0c17feefbdc3e29725cce05d7367ffedfaaa1bdda234b019df
  md5: 620b85a3f45526a8bc4d23fd78fc22f0
  depends:
  - __osx >=11.0
  license: bzip2-1.0.6
  license_family: BSD
  purls: []
  size: 124834
  timestamp: 1771350416561
- pypi: https://files.pythonhosted.org/packages/aa/bb/numpy-2.2.1-cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
  name: numpy
  version: 2.2.1
  sha256: 1111111111111111111111111111111111111111111111111111111111111111
  requires_python: '>=3.10'
- pypi: https://files.pythonhosted.org/packages/8c/40/5792ccccd91d45e87d9e00033abc4f6ca8a828467b193f711139ff1f1cd9/numpy-2.2.1-cp313-cp313-macosx_11_0_arm64.whl
  name: numpy
  version: 2.2.1
  sha256: 3ecc47cd7f6ea0336042be87d9e7da378e5c7e9b3c8ad0f7c966f714fc10d821
  requires_python: '>=3.10'
- pypi: https://files.pythonhosted.org/packages/cc/dd/six-1.17.0-py2.py3-none-any.whl
  name: six
  version: 1.17.0
  sha256: 2222222222222222222222222222222222222222222222222222222222222222
  requires_dist:
  - pytest ; extra == 'test'
  requires_python: '>=2.7, !=3.0.*, !=3.1.*, !=3.2.*'
- conda: https://conda.anaconda.org/conda-forge/noarch/tzdata-2025c-hc9c84f9_1.conda
  sha256: 1d30098909076af33a35017eed6f2953af1c769e273a0626a04722ac4acaba3c
  md5: ad659d0a2b3e47e38d829aa8cad2d610
  license: LicenseRef-Public-Domain
  purls: []
  size: 119135
  timestamp: 1767016325805
"""

DIGEST = "# conda-exec-lock-input-sha256: " + "ab" * 32


def embed(yaml_text: str) -> str:
    """A script with YAML_TEXT embedded as conda-exec's write_embedded does."""
    content = f"{DIGEST}\n{yaml_text}".splitlines()
    block = ["# /// conda-exec-lock", *(f"# {t}" if t else "#" for t in content), "# ///"]
    script = ["# /// script", "# requires-python = '>=3.12'", "#", "# [tool.conda]",
              "# channels = ['conda-forge']", "# dependencies = ['bzip2']", "# ///"]
    return "\n".join([*script, "", *block, "", "print('hello')"]) + "\n"


def block_lines(script: str) -> List[Tuple[int, str]]:
    """The lock block's content lines of SCRIPT as conda-execute hands them over: numbered,
    stripped, without the '# ' prefix ('#' alone gives '')."""
    lines = list(enumerate(script.splitlines(), 1))
    start = next(n for n, t in lines if t.strip() == "# /// conda-exec-lock")
    body = []
    for n, text in lines[start:]:
        text = text.strip()
        if text == "# ///":
            return body
        assert text.startswith("# ") or text == "#", text
        body.append((n, text[2:]))
    raise AssertionError("no closer")


def read(yaml_text: str, platform: str):
    return conda_exec_lock(block_lines(embed(yaml_text)), "script.py", platform)


def urls(names: List[str]) -> List[str]:
    return [f"{CF}/{name}" for name in names]


LINUX = urls(["linux-64/_openmp_mutex-4.5-20_gnu.conda", "linux-64/bzip2-1.0.8-hda65f42_9.conda",
              "noarch/ca-certificates-2026.5.20-hbd8a1cb_0.conda",
              "linux-64/libgcc-15.2.0-he0feb66_19.conda", "linux-64/libgomp-15.2.0-he0feb66_19.conda",
              "noarch/tzdata-2025c-hc9c84f9_1.conda"])
OSX = urls(["osx-arm64/bzip2-1.0.8-hd037594_9.conda",
            "noarch/ca-certificates-2026.5.20-hbd8a1cb_0.conda", "noarch/tzdata-2025c-hc9c84f9_1.conda"])


# --- what a conda-exec lock gives ------------------------------------------------------------


def test_conda_exec_lock_for_each_platform():
    conda, pins = read(CONDA_EXEC_YAML, "linux-64")
    assert [u.split("#")[0] for u, _ in conda] == LINUX
    assert conda[1] == (f"{LINUX[1]}#d2ffd7602c02f2b316fd921d39876885",
                        "0b75d45f0bba3e95dc693336fa51f40ea28c980131fec438afb7ce6118ed05f6")
    assert pins == []
    conda, pins = read(CONDA_EXEC_YAML, "osx-arm64")
    assert [u.split("#")[0] for u, _ in conda] == OSX
    assert conda[0] == (f"{OSX[0]}#620b85a3f45526a8bc4d23fd78fc22f0",
                        "540fe54be35fac0c17feefbdc3e29725cce05d7367ffedfaaa1bdda234b019df")
    assert conda[2] == read(CONDA_EXEC_YAML, "linux-64")[0][5]  # the noarch record, shared
    assert all(len(h) == 64 and len(u.rsplit("#", 1)[1]) == 32 for u, h in conda)


def test_trailing_spaces_as_ruamel_writes_them():
    spaced = "\n".join(line + " " for line in CONDA_EXEC_YAML.splitlines()) + "\n"
    lines = [(n, t + " ") for n, t in block_lines(embed(CONDA_EXEC_YAML))]
    assert conda_exec_lock(lines, "s", "linux-64") == read(CONDA_EXEC_YAML, "linux-64")
    assert read(spaced, "osx-arm64") == read(CONDA_EXEC_YAML, "osx-arm64")


def test_pixi_style_with_pypi_pins():
    conda, pins = read(PIXI_YAML, "linux-64")
    assert conda == [(f"{CF}/linux-64/bzip2-1.0.8-hda65f42_9.conda#d2ffd7602c02f2b316fd921d39876885",
                      "0b75d45f0bba3e95dc693336fa51f40ea28c980131fec438afb7ce6118ed05f6"),
                     (f"{CF}/noarch/tzdata-2025c-hc9c84f9_1.conda#ad659d0a2b3e47e38d829aa8cad2d610",
                      "1d30098909076af33a35017eed6f2953af1c769e273a0626a04722ac4acaba3c")]
    assert pins == ["numpy==2.2.1", "six==1.17.0"]
    conda, pins = read(PIXI_YAML, "osx-arm64")
    assert [u.split("#")[0] for u, _ in conda] == [OSX[0], OSX[2]]
    assert pins == ["numpy==2.2.1"]


def test_both_styles_read_the_same():
    pixi_style = re.sub(r"conda:\n +", "conda: ", CONDA_EXEC_YAML)  # URLs back on their line
    head, tail = pixi_style.split("\npackages:\n")
    head = re.sub(r"(?m)^( *)  - ", r"\1- ", head)  # the dash under the key
    tail = "".join(line[2:] + "\n" for line in tail.splitlines())  # top-level list at column 0
    pixi_style = f"{head}\npackages:\n{tail}"
    assert "\n- conda: https://" in pixi_style and "\n  sha256: " in pixi_style
    assert "\n      - conda: https://" in pixi_style
    draft_doc = draft.read_yaml_subset(list(enumerate(pixi_style.splitlines(), 1)))
    assert draft_doc == draft.read_yaml_subset(list(enumerate(CONDA_EXEC_YAML.splitlines(), 1)))
    for platform in ("linux-64", "osx-arm64"):
        assert read(pixi_style, platform) == read(CONDA_EXEC_YAML, platform)


def test_yaml_subset_values():
    text = """\
a: plain value # a comment
b: 'it''s: quoted'
c: "tab\\there \\u00e9 \\x41"
d: a plain value folded
  over two lines
e: 'a quoted value folded
  over two lines'
f: []
g: {}
h:
  - - nested
    - list
  - key: value
    other:
    - under the key
i: 6
"""
    doc = draft.read_yaml_subset(list(enumerate(text.splitlines(), 1)))
    assert doc == {"a": "plain value", "b": "it's: quoted", "c": "tab\there é A",
                   "d": "a plain value folded over two lines",
                   "e": "a quoted value folded over two lines", "f": [], "g": {},
                   "h": [["nested", "list"], {"key": "value", "other": ["under the key"]}],
                   "i": "6"}
    assert doc["h"][1]["other"].line == 15


# --- refusals: one line, and the line it is about --------------------------------------------


def refusal(yaml_text: str, platform: str = "linux-64") -> CondaExecLockError:
    with pytest.raises(CondaExecLockError) as info:
        read(yaml_text, platform)
    error = info.value
    assert error.path == "script.py" and str(error).startswith(f"script.py:{error.line}: ")
    assert "\n" not in str(error) and error.message.startswith("conda-exec lock: ")
    return error


def line_of(yaml_text: str, fragment: str) -> int:
    """The script line of the first lock line holding FRAGMENT."""
    script = embed(yaml_text)
    return next(n for n, t in enumerate(script.splitlines(), 1) if fragment in t)


def test_not_version_6():
    text = PIXI_YAML.replace("version: 6", "version: 7")
    error = refusal(text)
    assert "version 7, not 6" in error.message and error.line == line_of(text, "version: 7")
    assert "no 'version'" in str(refusal(PIXI_YAML.replace("version: 6\n", "")))


def test_no_default_environment():
    text = PIXI_YAML.replace("  default:", "  dev:")
    assert refusal(text).message == "conda-exec lock: no 'default' environment (it has: dev)"


def test_no_list_for_the_platform():
    error = refusal(PIXI_YAML, "win-64")
    assert error.message == ("conda-exec lock: no package list for win-64 "
                          "(the lock has: linux-64, osx-arm64)")
    assert error.line == line_of(PIXI_YAML, "linux-64:")


def test_url_without_record():
    text = CONDA_EXEC_YAML.replace("https://conda.anaconda.org/conda-forge/linux-64/libgomp-15.2.0",
                                   "https://conda.anaconda.org/conda-forge/linux-64/libgomp-15.2.1", 1)
    error = refusal(text)
    assert error.message == f"conda-exec lock: no package record for {CF}/linux-64/libgomp-15.2.1-he0feb66_19.conda"
    assert error.line == line_of(text, "libgomp-15.2.1")


@pytest.mark.parametrize("name", ["md5", "sha256"])
def test_record_without_hash(name):
    hashes = {"md5": "ad659d0a2b3e47e38d829aa8cad2d610",
              "sha256": "1d30098909076af33a35017eed6f2953af1c769e273a0626a04722ac4acaba3c"}
    text = PIXI_YAML.replace(f"  {name}: {hashes[name]}\n", "")
    assert text != PIXI_YAML
    assert refusal(text).message == f"conda-exec lock: no {name} for {CF}/noarch/tzdata-2025c-hc9c84f9_1.conda"


def test_malformed_hash():
    text = PIXI_YAML.replace("md5: d2ffd7602c02f2b316fd921d39876885", "md5: d2ffd7602c02")
    assert "md5 of" in str(refusal(text)) and "not 32 hex digits" in str(refusal(text))


def test_several_records_for_one_url():
    record = "- conda: https://conda.anaconda.org/conda-forge/noarch/tzdata-2025c-hc9c84f9_1.conda\n"
    text = PIXI_YAML + record + "  sha256: " + "1" * 64 + "\n  md5: " + "2" * 32 + "\n"
    assert "several package records for" in str(refusal(text))


@pytest.mark.parametrize("old, new, message", [
    ("  default:", "  default: {channels: []}", "cannot read '{channels: []}'"),
    ("    channels:", "    channels: &chan", "cannot read '&chan'"),
    ("  license: bzip2-1.0.6", "  license: |", "cannot read '|'"),
    ("  size: 260182", "  size: 260182\n  size: 260183", "the key 'size' appears twice"),
    ("  size: 260182", "  size: 260182\n     oops: 1", "a ':' inside a plain value"),
    ("  size: 260182", "\tsize: 260182", "a tab in the indentation"),
    ("version: 6", "---\nversion: 6", "several documents"),
    ("  size: 260182", "  size: '260182", "no closing quote"),
    ("  size: 260182", '  size: "\\q"', "cannot read the escape"),
    ("  size: 260182", "  size: 260182\n - stray", "unexpected indentation"),
    ("\n- conda: https://conda.anaconda.org/conda-forge/linux-64/bzip2-1.0.8-hda65f42_9.conda\n",
     "\n- conda: https://conda.anaconda.org/conda-forge/linux-64/bzip2-1.0.8-hda65f42_9.conda\n"
     "  pypi: https://example.org/x.whl\n", "one 'conda' or 'pypi' key"),
])
def test_what_it_cannot_parse(old, new, message):
    assert old in PIXI_YAML
    assert message in str(refusal(PIXI_YAML.replace(old, new, 1)))


def test_wrong_shapes():
    text = "version: 6\nenvironments: x\npackages: []\n"
    error = refusal(text)
    assert error.message == "conda-exec lock: 'environments' must be a mapping, found a value"
    assert error.line == line_of(text, "environments: x")
    text = "version: 6\nenvironments:\n  default:\n    packages:\n      linux-64: none\npackages: []\n"
    assert "the package list for linux-64 must be a list, found a value" in str(refusal(text))


def test_urls_it_will_not_use():
    wrong = PIXI_YAML.replace("      - conda: https://conda.anaconda.org/conda-forge/osx-arm64/bzip2",
                              "      - conda: https://conda.anaconda.org/conda-forge/linux-64/bzip2-1.0.8-hda65f42_9.conda\n"
                              "      - conda: https://conda.anaconda.org/conda-forge/osx-arm64/bzip2")
    assert "the list for osx-arm64 holds a package for linux-64" in str(refusal(wrong, "osx-arm64"))
    local = CONDA_EXEC_YAML.replace(f"{CF}/noarch/tzdata-2025c-hc9c84f9_1.conda", "/tmp/tzdata.conda")
    assert "/tmp/tzdata.conda is not the URL of a .conda or .tar.bz2 package" in str(refusal(local))
    wheel = PIXI_YAML.replace("/six-1.17.0-py2.py3-none-any.whl", "/six.whl")
    assert read(wheel, "linux-64")[1] == ["numpy==2.2.1", "six==1.17.0"]


def test_pypi_packages_it_will_not_pin():
    editable = PIXI_YAML.replace("  name: six\n", "  name: six\n  editable: true\n")
    assert "is editable: cannot pin it" in str(refusal(editable))
    path = PIXI_YAML.replace("https://files.pythonhosted.org/packages/cc/dd/six-1.17.0-py2.py3-none-any.whl", ".")
    assert refusal(path).message == "conda-exec lock: the PyPI package at . is not from a URL: cannot pin it"
    bad_pin = PIXI_YAML.replace("  version: 1.17.0", "  version: 1.17.0 ; rm -rf")
    assert refusal(bad_pin).message == "conda-exec lock: cannot pin six==1.17.0 ; rm -rf (expected name==version)"


def test_empty_and_conda_less():
    with pytest.raises(CondaExecLockError, match="the block is empty"):
        conda_exec_lock([(10, "# conda-exec-lock-input-sha256: ab"), (11, "")], "s", "linux-64")
    only_pypi = PIXI_YAML.replace(
        "      - conda: https://conda.anaconda.org/conda-forge/osx-arm64/bzip2-1.0.8-hd037594_9.conda\n"
        "      - conda: https://conda.anaconda.org/conda-forge/noarch/tzdata-2025c-hc9c84f9_1.conda\n", "")
    assert "no conda packages for osx-arm64" in str(refusal(only_pypi, "osx-arm64"))


def test_deep_nesting_is_refused_not_a_recursion_error():
    deep = "a:\n" + "".join(" " * (i + 1) + "- x:\n" for i in range(0, 200, 2))
    with pytest.raises(CondaExecLockError, match="more than 80 columns"):
        conda_exec_lock(list(enumerate(deep.splitlines(), 1)), "s", "linux-64")
    compact = "a: \n  " + "- " * 100 + "x"
    with pytest.raises(CondaExecLockError, match="more than 80 columns"):
        conda_exec_lock(list(enumerate(compact.splitlines(), 1)), "s", "linux-64")


# --- against py-rattler ----------------------------------------------------------------------

import rattler  # noqa: E402  (the test extra installs py-rattler)


@pytest.mark.parametrize("text", [CONDA_EXEC_YAML, PIXI_YAML], ids=["conda-exec", "pixi"])
def test_rattler_reads_the_same(tmp_path, text):
    """py-rattler (the reference reader of v6) finds the same URLs, hashes and pins."""
    path = tmp_path / "pixi.lock"
    path.write_text(text)
    env = rattler.LockFile.from_path(path).default_environment()
    for platform in env.platforms():
        conda, pins = read(text, platform.name)
        records = env.conda_repodata_records_for_platform(platform)
        ours = sorted(conda)  # rattler lists them in the order of the top-level 'packages'
        assert ours == sorted((f"{r.url}#{r.md5.hex()}", r.sha256.hex()) for r in records)
        pypi = env.pypi_packages_for_platform(platform) or []
        assert sorted(pins) == sorted(f"{p.name}=={p.version}" for p in pypi)


def test_rattler_written_lock_is_refused(tmp_path):
    """py-rattler 0.28 writes only version 7 (top-level 'platforms'): refused, with the line."""
    lock = rattler.LockFile.from_path(_write(tmp_path / "in.lock", PIXI_YAML))
    lock.to_path(tmp_path / "out.lock")
    written = (tmp_path / "out.lock").read_text()
    assert written.startswith("version: 7\n")
    with pytest.raises(CondaExecLockError) as info:
        conda_exec_lock(list(enumerate(written.splitlines(), 1)), "s", "linux-64")
    assert info.value.message == ("conda-exec lock: lock format version 7, not 6 "
                               "(the rattler-lock v6 that conda-exec writes)")
    assert info.value.line == 1


def _write(path, text) -> str:
    path.write_text(text)
    return os.fspath(path)
