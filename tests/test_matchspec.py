"""match_spec_problem: conda 26.x's MatchSpec grammar, checked without conda.

(a) facts observed on real conda 26.7.1; (b) agreement with py-rattler's strict parser over
generated specs, except for the documented shapes where rattler and conda differ (conda wins);
(c) pixi_dependency_spec against rattler's lenient reading of pixi's `name=value`.
"""

from __future__ import annotations

import pytest
import rattler
from hypothesis import given, settings
from hypothesis import strategies as st

from conda_execute import OPERATOR_CHARS, match_spec_problem, pixi_dependency_spec


def rattler_accepts(spec: str, strict: bool = True) -> bool:
    """Whether py-rattler parses SPEC (strict parsing by default)."""
    try:
        rattler.MatchSpec(spec, strict=strict)
    except Exception:
        return False
    return True


# ---------------------------------------------------------------- (a) facts from conda 26.7.1

ACCEPTED = [
    "python =3.6.1", "numpy 1.26.*", "r-base=4.3.*", "conda-forge::scipy", "numpy[version='>=1']", "::numpy",
    "numpy 1.2 build extra", "python >=3.8", "numpy", "tool 1.0 0", "pkg[build_number=3]", "python 3.11.*",
    "numpy >=1.20,<2", "numpy 1.2|1.3",
]
REFUSED = {
    "numpy >=>1": "'>=>'",
    "numpy ==": "empty version after '=='",
    "numpy >=1,,<2": "'>=1,,<2'",
    "numpy=1=2=3": "too many '=' in 'numpy=1=2=3'",
    "name=>=1.1": "invalid operator '=>=' in '=>=1.1'",
    "numpy[version=": "unclosed '[' in 'numpy[version='",
    "tool>=>1": "'>=>'",
}


@pytest.mark.parametrize("spec", ACCEPTED)
def test_conda_accepts(spec):
    assert match_spec_problem(spec) is None


@pytest.mark.parametrize(("spec", "fragment"), sorted(REFUSED.items()))
def test_conda_refuses(spec, fragment):
    problem = match_spec_problem(spec)
    assert problem is not None and fragment in problem, problem


def test_empty_spec_is_refused():
    assert match_spec_problem("") == "empty match spec"
    assert match_spec_problem("   ") is not None


# ---------------------------------------------------------------- (b) rattler strict vs conda

# Where py-rattler 0.28 (strict) and conda 26.7.1 differ; conda wins.  Line numbers are those of
# conda 26.7.1's conda/models/match_spec.py (ms) and conda/models/version.py (v).
CONDA_RATTLER_DIFFERENCES = {
    # rattler refuses, conda accepts
    "numpy 1.2": (True, "bare version means ==1.2: VersionSpec falls through to VersionOrder (v:561-565)"),
    "numpy 1.2|1.3": (True, "bare versions in an OR, each ==: treeify then VersionSpec per leaf (v:481-492)"),
    "tool 1.0 0": (True, "`name version build`: _parse_version_plus_build (ms:707-733)"),
    "numpy=1.2=py_0": (True, "`name=version=build`: _VERSION_BUILD_RE takes '=' as separator (ms:112-121)"),
    "numpy 1.2 build extra": (True, "build may hold spaces: _VERSION_BUILD_RE build group (ms:117), GlobStrMatch"),
    "r-base=4.3.*": (True, "'=X.*' sanitized to 'X.*' (ms:_sanitize_version_str 815-832)"),
    "numpy >=1.2.*": (True, "'.*' after a relational operator is dropped with a warning (v:522-538)"),
    "numpy 1.*.2": (True, "'*' inside a version is a glob regex (v:546-551)"),
    "numpy=": (True, "a lone operator after the name is not a version: _NAME_VERSION_RE needs 2 chars (ms:96-101)"),
    "numpy<": (True, "same as 'numpy=' (ms:96-101)"),
    "py*": (True, "glob names skip name validation (ms:_validate_package_name 129-130)"),
    "numpy=>1.2": (True, "'=>1.2' loses its '=' and reads as '>1.2*' (ms:_sanitize_version_str 815-832)"),
    "numpy =<1": (True, "'=<1' reads as '<1*' likewise (ms:815-832, v:version_relation_re 484)"),
    "numpy===1.2": (True, "'==...' loses all leading '=' via lstrip (ms:_sanitize_version_str 822-826)"),
    "numpy 1.2.*=py*": (True, "glob version then '=' build (ms:112-121); rattler wants the build blank-separated"),
    ":pkgs/main::numpy": (True, "channel is anything before the last two ':' (ms:948-960); rattler checks names"),
    'numpy[license="0"]]': (True, "_BRACKETS_RE is greedy up to the last ']' (ms:52), the KV regex skips junk"),
    # conda refuses, rattler accepts
    "a..b": (False, "CEP-26 names: no doubled separators (ms:_CEP26_NAME_RE 105-107, 136-145)"),
    "-numpy": (False, "CEP-26 names start with a letter, digit or one '_' (ms:105-107)"),
    "a__b": (False, "CEP-26 names: no '__' inside a name (ms:105-107)"),
    "numpy-_": (False, "CEP-26: one separator at a time, even at the end (ms:105-107)"),
}


@pytest.mark.parametrize(("spec", "conda"), [(k, v[0]) for k, v in CONDA_RATTLER_DIFFERENCES.items()])
def test_known_differences_follow_conda(spec, conda):
    assert (match_spec_problem(spec) is None) is conda
    assert rattler_accepts(spec) is not conda, "rattler now agrees with conda: drop this difference"


# Common ground: shapes both parsers read the same way (none of the shapes above).
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
NAMES = st.builds(
    lambda head, parts: head + "".join(sep + part for sep, part in parts),
    st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=1).map(str) | st.text(_ALNUM, min_size=2, max_size=6)
    .filter(lambda t: t[0].isalpha()),
    st.lists(st.tuples(st.sampled_from("-_."), st.text(_ALNUM, min_size=1, max_size=4)), max_size=2),
)
VERSIONS = st.builds(
    lambda nums, tail: ".".join(nums) + tail,
    st.lists(st.integers(0, 999).map(str), min_size=1, max_size=4),
    st.sampled_from(["", "", "", "rc1", "a2", ".post1", ".dev0", "+local", "_1"]),
)
OPERATORS = st.sampled_from(["==", "!=", "<=", ">=", "<", ">"])
CONSTRAINTS = st.one_of(st.builds(lambda op, v: op + v, OPERATORS, VERSIONS), VERSIONS.map(lambda v: v + ".*"))
EXPRS = st.builds(
    lambda first, rest: first + "".join(sep + c for sep, c in rest),
    CONSTRAINTS,
    st.lists(st.tuples(st.sampled_from([",", "|"]), CONSTRAINTS), max_size=2),
)
BUILDS = st.one_of(
    st.builds(lambda a, b: a + b, st.sampled_from("abhpy"), st.text(_ALNUM + "_", max_size=8)),
    st.sampled_from(["*_cpython", "py*", "*", "0"]),
)
CHANNELS = st.sampled_from(["", "", "", "conda-forge::", "bioconda::", "conda-forge/linux-64::", "pkgs/main::"])


@st.composite
def common_specs(draw):
    """A spec that both conda and rattler's strict parser accept."""
    name, expr = draw(NAMES), draw(EXPRS)
    form = draw(st.integers(0, 5))
    if form == 0:
        body = name
    elif form == 1:
        body = f"{name} {expr}"
    elif form == 2:
        body = f"{name} {draw(CONSTRAINTS)} {draw(BUILDS)}"
    elif form == 3:
        body = f"{name}[version='{expr}']"
    elif form == 4:
        body = f"{name}[build_number={draw(st.integers(0, 999))}]"
    else:
        body = name + draw(st.builds(lambda op, v: op + v, OPERATORS, VERSIONS))
    return draw(CHANNELS) + body


BREAKERS = [
    lambda e: e + ",",  # trailing AND
    lambda e: "|" + e,  # leading OR
    lambda e: e.replace(",", ",,", 1) if "," in e else e + ",,<9",  # empty AND slot
    lambda e: ">=>" + e.lstrip("=<>!"),  # unknown operators
    lambda e: "<>" + e.lstrip("=<>!"),
    lambda e: ">=1..2",  # empty version component
    lambda e: ">=1.2.",
    lambda e: ">=x!1",  # epoch must be an integer
    lambda e: ">=1!2!3",
    lambda e: ">=1+a+b",
]


@st.composite
def broken_specs(draw):
    """A common-ground spec with a mutation that both parsers refuse."""
    name, expr = draw(NAMES), draw(EXPRS)
    broken = draw(st.sampled_from(BREAKERS))(expr)
    form = draw(st.integers(0, 3))
    if form == 0:
        return f"{name} {broken}"
    if form == 1:
        return f"{name}[version='{broken}']"
    if form == 2:
        return f"{name}[version='{expr}'"  # unclosed bracket
    return f"{name}{draw(st.sampled_from(['%', '@x', '$', '/', '!']))}{draw(NAMES)} {expr}"  # bad name


@settings(max_examples=2500, deadline=None)
@given(common_specs())
def test_common_ground_both_accept(spec):
    assert rattler_accepts(spec), spec
    assert match_spec_problem(spec) is None


@settings(max_examples=2500, deadline=None)
@given(broken_specs())
def test_broken_specs_both_refuse(spec):
    assert not rattler_accepts(spec), spec
    assert match_spec_problem(spec) is not None


@st.composite
def difference_specs(draw):
    """Generated members of the difference shapes above, which conda accepts and rattler refuses."""
    name, version, build = draw(NAMES), draw(VERSIONS), draw(BUILDS.filter(lambda b: b[0].isalpha()))
    return draw(st.sampled_from([
        f"{name} {version}",
        f"{name} {version} {build}",
        f"{name}={version}={build}",
        f"{name}={version}.*",
        f"{name} >={version}.*",
        f"{name}=",
        f"{name[0]}*",
        f"{name}==={version}",
    ]))


@settings(max_examples=2000, deadline=None)
@given(difference_specs())
def test_difference_shapes_follow_conda(spec):
    assert match_spec_problem(spec) is None
    assert not rattler_accepts(spec), spec


# ---------------------------------------------------------------- (c) pixi's `name = "value"`

PIXI_VALUES = st.one_of(
    VERSIONS,  # 1.2.3
    VERSIONS.map(lambda v: v + ".*"),  # 3.12.*
    st.builds(lambda op, v: op + v, OPERATORS, VERSIONS),  # >=1.1, ==1.0: rattler's lenient parse refuses
    EXPRS,  # >=1,<2 ; 1.2.*|3.4.*
    st.builds(lambda v, w: f"{v}|{w}", VERSIONS, VERSIONS),  # 1.2|1.3
    st.builds(lambda v, w: f"{v},<{w}", VERSIONS, VERSIONS),  # 1.2,<2
    VERSIONS.map(lambda v: "=" + v),  # =1.2
    st.builds(lambda v, b: f"{v} {b}", st.one_of(VERSIONS, VERSIONS.map(lambda v: v + ".*")), BUILDS),
    st.builds(lambda v, b: f"{v}={b}", VERSIONS, BUILDS),  # 1.2=py_0
    st.builds(lambda v, b, c: f"{v} {b} {c}", VERSIONS, BUILDS, BUILDS),  # build with a blank
    BUILDS.map(lambda b: f"* {b}"),
    st.sampled_from(["*", "3.12.* *_cpython", "1.0 build0", ">=1.1", "1!2.0", " 1.2 ", "1.2,1.3"]),
)


def _fields(spec: rattler.MatchSpec):
    """(name, version, build) of a parsed spec as strings; version '*' and none are the same."""
    version = None if spec.version is None or str(spec.version) == "*" else str(spec.version)
    return str(spec.name), version, None if spec.build is None else str(spec.build)


def _operator_first(value: str) -> bool:
    """pixi's ">=1.1": a version spec after the name (rattler 0.28's lenient parse refuses
    `mojo=>=1.1`; pixi means `mojo >=1.1`, as NamelessMatchSpec reads ">=1.1")."""
    text = value.strip()
    return bool(text) and text[0] in OPERATOR_CHARS and not (
        text[0] == "=" and text[1:2] not in OPERATOR_CHARS)


@settings(max_examples=2500, deadline=None)
@given(NAMES, PIXI_VALUES)
def test_pixi_dependency_spec_means_what_rattler_lenient_means(name, value):
    """What conda is given means what pixi reads: rattler's lenient `name=VALUE`, or for an
    operator first, the lenient version spec VALUE. What rattler cannot read is refused,
    here (ValueError) or by conda's grammar before any create (check_specs)."""
    try:
        if _operator_first(value):
            nameless = rattler.NamelessMatchSpec(value, strict=False)
            lenient = (str(rattler.MatchSpec(name, strict=False).name),
                       None if str(nameless.version) == "*" else str(nameless.version),
                       None if nameless.build is None else str(nameless.build))
        else:
            lenient = _fields(rattler.MatchSpec(f"{name}={value}", strict=False))
    except Exception:
        try:
            spec = pixi_dependency_spec(name, value)
        except ValueError:
            return
        assert match_spec_problem(spec) is not None, spec
        return
    spec = pixi_dependency_spec(name, value)
    assert _fields(rattler.MatchSpec(spec, strict=True)) == lenient, spec
    assert match_spec_problem(spec) is None, spec


def test_pixi_dependency_spec_examples():
    assert pixi_dependency_spec("python", "*") == "python"
    assert pixi_dependency_spec("python", "") == "python"  # rattler refuses `python=`; pixi means any
    assert pixi_dependency_spec("python", "3.12.* *_cpython") == "python 3.12.* *_cpython"
    assert pixi_dependency_spec("tool", "1.2") == "tool 1.2.*"
    assert pixi_dependency_spec("tool", "1.0 build0") == "tool ==1.0 build0"
    assert pixi_dependency_spec("mojo", ">=1.1") == "mojo >=1.1"  # pixi's meaning (see above)
    assert pixi_dependency_spec("tool", "==1.0") == "tool ==1.0"
