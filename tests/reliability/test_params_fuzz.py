"""Malformed values thrown at every parameter section (hypothesis): each is refused by validation, before
any work, with an error that names the key and what is allowed; nothing is written."""
import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdemi import params

ROOT = Path(__file__).resolve().parents[2]
# the entries as the stages see them (templates expanded), so every key a run has is fuzzed where its errors name it
DEFAULT = {k: v for k, v in params.expand_templates(yaml.safe_load((ROOT / "params.yaml").read_text())).items()
           if k != "templates"}
NAMES = {"arch", "host", "dataset", "method", "variant", "mixing", "device", "loss", "profile"}  # from a closed set
FREE = {"teacher", "transfer", "diagnostics_reference", "root", "layer", "headline_method"}  # paths, checked by stages


def _leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif not isinstance(node, list):
        yield path, node


LEAVES = [(p, v) for p, v in _leaves(DEFAULT) if v is not None]
SECTIONS = sorted({p[0] for p, _ in LEAVES})

wrong_for_number = st.one_of(st.text(min_size=1, max_size=8), st.lists(st.integers(), max_size=2),
                             st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=2))
wrong_for_text = st.one_of(st.lists(st.integers(), min_size=1, max_size=2),
                           st.dictionaries(st.text(min_size=1, max_size=3), st.integers(), min_size=1, max_size=2))
wrong_for_bool = st.one_of(st.text(min_size=1, max_size=8), st.lists(st.integers(), max_size=2))


def _bad_value(draw, leaf, value):
    if isinstance(value, bool):
        return draw(wrong_for_bool)
    if isinstance(value, (int, float)):
        return draw(wrong_for_number)
    if leaf in NAMES:
        return draw(st.one_of(wrong_for_text, st.text(alphabet="xyzq_", min_size=1, max_size=10)))
    return draw(wrong_for_text)


@st.composite
def corrupted(draw):
    """(profile dict, the mutated path) with one leaf replaced by a value its key does not accept."""
    path, value = draw(st.sampled_from(LEAVES))
    raw = copy.deepcopy(DEFAULT)
    node = raw
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = _bad_value(draw, path[-1], value)
    return raw, path


def _named(message: str, path: tuple) -> bool:
    """The error names the entry (first two levels) and the key, on one line."""
    head, leaf = ".".join(str(p) for p in path[:2]), str(path[-1])
    return any(head in line and (leaf in line or "host_params" in line) for line in message.splitlines())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=corrupted())
def test_every_malformed_value_is_refused_with_its_key(case, tmp_path_factory, tally):
    raw, path = case
    tally.bad_input("parameter value of a wrong type, name or range")
    folder = tmp_path_factory.mktemp("profile")
    profile = folder / "params.yaml"
    profile.write_text(yaml.safe_dump(raw))
    with pytest.raises(params.ParamsError) as err:
        params.load(profile)
    assert _named(str(err.value), path), (path, str(err.value)[:500])
    assert [p.name for p in folder.iterdir()] == ["params.yaml"]  # nothing else written


@st.composite
def out_of_range(draw):
    numeric = [(p, v) for p, v in LEAVES if isinstance(v, (int, float)) and not isinstance(v, bool)
               and p[-1] in {"epochs", "kd_steps", "batch_size", "lr", "temperature", "ipc", "iterations", "width",
                             "runs", "seed", "threads", "real_reference_per_class", "curve_test_per_class", "g_steps",
                             "lr_g", "nz", "bn", "oh", "tv", "weight", "level"}]
    path, _ = draw(st.sampled_from(numeric))
    raw = copy.deepcopy(DEFAULT)
    node = raw
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = draw(st.one_of(st.integers(max_value=-1), st.floats(max_value=-1e-6, allow_nan=False),
                                    st.just(float("nan")), st.just(float("inf"))))
    return raw, path


@settings(max_examples=100, deadline=None)
@given(case=out_of_range())
def test_negative_and_non_finite_numbers_are_refused(case, tally):
    raw, path = case
    tally.bad_input("negative or non-finite number")
    with pytest.raises(params.ParamsError) as err:
        params.validate(raw, "params.yaml")
    assert _named(str(err.value), path), (path, str(err.value)[:500])


@settings(max_examples=60, deadline=None)
@given(section=st.sampled_from(SECTIONS), key=st.text(alphabet="abcdefghij_", min_size=3, max_size=12))
def test_unknown_keys_are_refused_where_they_appear(section, key, tally):
    raw = copy.deepcopy(DEFAULT)
    target = raw[section]
    if isinstance(target, dict) and all(isinstance(v, dict) for v in target.values()) and section in (
            "train", "kd_full", "condense", "distill"):
        target = next(iter(target.values()))  # inside an entry
    if not isinstance(target, dict) or key in target:
        return
    target[key] = 1
    tally.bad_input("unknown parameter name")
    with pytest.raises(params.ParamsError, match=key):
        params.validate(raw, "params.yaml")
