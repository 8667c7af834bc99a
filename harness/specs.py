"""Frozen spec records: what a plugin contributes.

A plugin never hands facebench a bare class.  Each contribution hook returns a
list of specs, one per component.  A spec can be read without building
anything (``harness list`` needs only these), and it names its factory either
as a callable or as a ``"module:attr"`` string that is imported only when the
component is selected.  That keeps ``harness list`` free of torch, TensorFlow,
OpenCV and dlib, and lets a component whose framework is missing be listed as
unavailable instead of breaking the listing.

Every spec kind shares :class:`ComponentSpec`; the subclasses only add the
metadata that kind of component has (input size, embedding size, ...).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

from harness._values import did_you_mean, finite_float, one_line, short_repr
from harness.errors import ConfigError

__all__ = [
    "FRAMEWORKS",
    "KINDS",
    "BackboneSpec",
    "CommandSpec",
    "ComponentSpec",
    "DatasetSpec",
    "DetectorSpec",
    "EngineSpec",
    "InpainterSpec",
    "LandmarkerSpec",
    "LivenessSpec",
    "LossSpec",
    "NoOptions",
    "OptionError",
    "RecognizerSpec",
    "WeightsSpec",
    "check_range",
    "field_types",
    "framework_available",
    "settings_from_options",
    "parse_option_value",
    "resolve_factory",
]

#: Framework name -> (import name probed, pip extra that installs it).
FRAMEWORKS: Mapping[str, tuple[str | None, str | None]] = types.MappingProxyType(
    {
        "none": (None, None),
        "torch": ("torch", "torch"),
        "tensorflow": ("tensorflow", "tf"),
        "dlib": ("dlib", "dlib"),
        "onnx": ("onnxruntime", "onnx"),
        "opencv": ("cv2", "cv"),
    }
)


def framework_available(framework: str) -> bool:
    """Whether ``framework``'s module can be imported, without importing it."""
    module, _extra = FRAMEWORKS[framework]
    if module is None:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class OptionError(ConfigError, ValueError):
    """A ``-o component.key=value`` option that does not fit the spec."""


@dataclass(frozen=True)
class NoOptions:
    """Options of a component that takes none."""


@dataclass(frozen=True)
class WeightsSpec:
    """Pretrained weights a component needs, located at run time, never downloaded.

    :param filename: file name looked for (e.g. ``"pnet.pt"``).
    :param sha256: expected full hex digest; checked before loading.
    :param env: environment variable that may hold the file's path.
    :param data_path: path under ``FACEBENCH_DATA`` where the shared copy lives.
    :param package: an installed package that ships the file (``face_recognition_models``).
    :param license: the weights' licence, as stated by their source.
    :param source: where the weights come from (repository or paper).
    """

    filename: str
    sha256: str = ""
    env: str = ""
    data_path: str = ""
    package: str = ""
    license: str = ""
    source: str = ""


@dataclass(frozen=True)
class ComponentSpec:
    """What every component spec carries.

    :param name: lowercase registry name, spelled out (``mobilefacenet``).
    :param summary: one line shown by ``harness list``.
    :param factory: callable, or ``"module:attr"`` imported only when selected.
        It is called as ``factory(options)`` with an instance of ``options``.
    :param framework: one of :data:`FRAMEWORKS`.
    :param options: a frozen dataclass type; ``-o name.key=value`` is checked
        against its fields and converted to their types.
    :param paper: citation of the method.
    :param license: licence of the code or weights.
    :param weights: pretrained weights the component loads, if any.
    :param meta: any further metadata that is readable without building.
    """

    kind: ClassVar[str] = "component"

    name: str
    summary: str
    factory: Callable[..., Any] | str
    framework: str = "none"
    options: type = NoOptions
    paper: str = ""
    license: str = ""
    weights: tuple[WeightsSpec, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip().lower() or " " in self.name:
            raise ValueError(
                f"{self.kind} name {self.name!r} is invalid: names are lowercase, "
                "non-empty and contain no spaces (e.g. 'mobilefacenet')"
            )
        if self.framework not in FRAMEWORKS:
            raise ValueError(
                f"{self.kind} {self.name!r}: framework {self.framework!r} is not one of "
                f"{sorted(FRAMEWORKS)}"
            )
        if not (dataclasses.is_dataclass(self.options) and isinstance(self.options, type)):
            raise TypeError(
                f"{self.kind} {self.name!r}: options must be a dataclass type, "
                f"got {self.options!r}"
            )
        if not (callable(self.factory) or (isinstance(self.factory, str) and ":" in self.factory)):
            raise TypeError(
                f"{self.kind} {self.name!r}: factory must be a callable or a "
                f"'module:attr' string, got {self.factory!r}"
            )
        # Freeze the metadata mapping so a spec really is read-only.
        object.__setattr__(self, "meta", types.MappingProxyType(dict(self.meta)))

    # ----------------------------------------------------------------- helpers
    @property
    def extra(self) -> str | None:
        """The pip extra that installs this component's framework."""
        return FRAMEWORKS[self.framework][1]

    @property
    def available(self) -> bool:
        """Whether the framework this component needs can be imported."""
        return framework_available(self.framework)

    @property
    def install_hint(self) -> str:
        """The command that makes an unavailable component available."""
        if self.extra is None:
            return ""
        return f"pip install 'facebench[{self.extra}]'"

    def option_fields(self) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(self.options)}

    def make_options(self, values: Mapping[str, Any] | None = None) -> Any:
        """Build the options dataclass from raw values (CLI strings or YAML/Python values).

        :raises OptionError: an unknown key, or a value that does not convert
            or is out of the option's bounds.
        """
        if values is not None and not isinstance(values, Mapping):
            raise OptionError(
                f"options of {self.kind} {self.name!r} must map key: value, got {short_repr(values)}"
            )
        values = dict(values or {})
        fields = self.option_fields()
        unknown = sorted((k for k in values if k not in fields), key=str)
        if unknown:
            valid = ", ".join(sorted(fields)) or "(none)"
            raise OptionError(
                f"{self.kind} {self.name!r} has no option {short_repr(unknown[0])}"
                f"{did_you_mean(unknown[0], fields)}; valid options: {valid}"
            )
        hints = field_types(self.options)
        converted = {
            key: parse_option_value(hints.get(key, Any), raw, where=f"{self.name}.{key}")
            for key, raw in values.items()
        }
        try:
            return self.options(**converted)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"{self.kind} {self.name!r}: {one_line(exc)}") from exc

    def option_values(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The options given, as the options dataclass converted and normalised them.

        This — not the raw text — is what a run stores and hashes, so
        ``-o resnet20.dropout=0.1`` and YAML ``dropout: 0.1`` are one run.
        """
        opts = self.make_options(values)
        return {key: getattr(opts, key) for key in dict(values or {})}

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (used by ``harness list --json`` and results)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "summary": self.summary,
            "framework": self.framework,
            "available": self.available,
            "paper": self.paper,
            "license": self.license,
            "options": {
                f.name: _jsonable(_default_of(f)) for f in dataclasses.fields(self.options)
            },
            "weights": [dataclasses.asdict(w) for w in self.weights],
            "meta": {k: _jsonable(v) for k, v in self.meta.items()},
        }
        for f in dataclasses.fields(self):
            if f.name not in out and f.name not in ("factory",):
                out[f.name] = _jsonable(getattr(self, f.name))
        if not self.available:
            out["install"] = self.install_hint
        return out


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    return repr(value)


@functools.lru_cache(maxsize=None)
def field_types(cls: type) -> Mapping[str, Any]:
    """The resolved type hints of the dataclass ``cls`` (evaluated once per class)."""
    return types.MappingProxyType(typing.get_type_hints(cls))


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
#: No option is an integer beyond a C ``int64``: a bigger one is a typo, not a size.
_INT_LIMIT = 2**63 - 1


def parse_option_value(hint: Any, raw: Any, where: str = "option") -> Any:
    """Convert ``raw`` to the type ``hint`` declares, or raise :class:`OptionError`.

    ``raw`` is CLI text (``"0.1"``, ``"96,112"``, ``"yes"``) or a YAML/Python
    value; either way the result has the declared type, so the same setting
    from either source gives the same value.  Floats must be finite and
    integers fit in 64 bits; the message quotes at most ~80 characters of
    ``raw``.
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or (origin is None and not isinstance(hint, type)):
        return raw
    if origin is typing.Annotated:
        return parse_option_value(args[0], raw, where)
    if origin is typing.Literal:
        return _literal(args, raw, where)
    if origin in (typing.Union, types.UnionType):
        return _union(args, raw, where)
    if origin in (tuple, list):
        return _sequence(origin, args, raw, where)
    if origin is not None:
        return raw
    convert = _SCALARS.get(hint)
    return raw if convert is None else convert(raw, where)


def _bad(where: str, raw: Any, expected: str) -> OptionError:
    return OptionError(f"{where}={short_repr(raw)}: expected {expected}")


def _literal(choices: tuple[Any, ...], raw: Any, where: str) -> Any:
    for choice in choices:
        if raw == choice or (isinstance(raw, str) and str(choice) == raw):
            return choice
    raise _bad(where, raw, f"one of {', '.join(map(str, choices))}")


def _union(args: tuple[Any, ...], raw: Any, where: str) -> Any:
    if type(None) in args and (raw is None or (isinstance(raw, str) and raw.lower() in ("none", "null"))):
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return parse_option_value(arg, raw, where)
        except OptionError as exc:
            errors.append(str(exc))
    raise OptionError("; ".join(dict.fromkeys(errors)) or f"{where}={short_repr(raw)}: not allowed")


def _sequence(origin: type, args: tuple[Any, ...], raw: Any, where: str) -> Any:
    if isinstance(raw, str):
        items: list[Any] = [p.strip() for p in raw.replace(";", ",").split(",") if p.strip()]
    elif isinstance(raw, (list, tuple)):
        items = list(raw)
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        items = [raw]
    else:
        raise _bad(where, raw, "a comma-separated list of values")
    inner = [a for a in args if a is not Ellipsis] or [str]
    fixed = len(inner) == len(items) and Ellipsis not in args
    values = [parse_option_value(inner[i] if fixed else inner[0], v, where) for i, v in enumerate(items)]
    return tuple(values) if origin is tuple else values


def _to_int(raw: Any, where: str) -> int:
    if isinstance(raw, str) and _INT_TEXT.fullmatch(raw.strip()) and len(raw) <= 40:
        value = int(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    else:
        raise _bad(where, raw, "an integer")
    if abs(value) > _INT_LIMIT:
        raise _bad(where, raw, "an integer of a sane size (at most 2**63 - 1)")
    return value


def _to_float(raw: Any, where: str) -> float:
    value = finite_float(raw) if isinstance(raw, (str, int, float)) else None
    if value is None:
        raise _bad(where, raw, "a finite number")
    return value


def _to_bool(raw: Any, where: str) -> bool:
    if isinstance(raw, bool):
        return raw
    low = str(raw).strip().lower() if isinstance(raw, (str, int)) else ""
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise _bad(where, raw, "a boolean (true/false)")


def _to_str(raw: Any, where: str) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, os.PathLike):
        return os.fspath(raw)  # type: ignore[return-value]
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return str(raw)
    raise _bad(where, raw, "text")


_SCALARS: Mapping[Any, Callable[[Any, str], Any]] = {
    int: _to_int, float: _to_float, bool: _to_bool, str: _to_str,
}


def check_range(
    where: str, value: Any, low: float | None = None, high: float | None = None, *,
    low_open: bool = False, integer: bool = False,
) -> None:
    """Raise :class:`OptionError` unless ``value`` is a finite number in the bounds.

    The bounds of every option and setting go through here, so each message
    reads the same: ``resnet20.embedding_size=99999: expected an integer in
    [1, 65536]``.

    :param low: the least value allowed (exclusive with ``low_open``); None: no lower bound.
    :param high: the largest value allowed; None: no upper bound.
    :param integer: the value must be an ``int`` (a bool is not one).
    """
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = number and (isinstance(value, int) or (not integer and math.isfinite(value)))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if ok:
        return
    kind = "an integer" if integer else "a number"
    if low is not None and high is not None and not low_open:
        expected = f"{kind} in [{low:g}, {high:g}]"
    else:
        parts = ([f"{'>' if low_open else '>='} {low:g}"] if low is not None else []) + (
            [f"<= {high:g}"] if high is not None else [])
        expected = f"{kind} {' and '.join(parts)}".strip()
    raise OptionError(f"{where}={short_repr(value)}: expected {expected}")


def resolve_factory(spec: ComponentSpec) -> Callable[..., Any]:
    """Import the factory of ``spec`` (only now, when the component is selected)."""
    if callable(spec.factory):
        return spec.factory
    module_name, _, attr = spec.factory.partition(":")
    module = importlib.import_module(module_name)
    try:
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ImportError(
            f"{spec.kind} {spec.name!r}: factory {spec.factory!r} names no attribute "
            f"{attr!r} in {module_name}"
        ) from None
    return obj


# --------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class BackboneSpec(ComponentSpec):
    """A trainable network: aligned face batch (N, 3, H, W) -> embeddings (N, D).

    :param input_size: (height, width) the network is designed for.
    :param embedding_size: D.
    :param mean, std: per-channel normalisation applied to RGB in [0, 255].
    :param alignment: alignment template name (``arcface_112``, ``sphereface_112x96``).
    """

    kind: ClassVar[str] = "backbone"
    input_size: tuple[int, int] = (112, 112)
    embedding_size: int = 512
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    alignment: str = "arcface_112"


@dataclass(frozen=True)
class LossSpec(ComponentSpec):
    """A training objective: (embeddings, labels) -> scalar loss.

    :param needs_classifier: the loss owns a (num_classes, D) weight matrix.
    :param sampler: ``"random"`` or ``"pk"`` (P identities x K images, for triplet losses).
    """

    kind: ClassVar[str] = "loss"
    needs_classifier: bool = True
    sampler: str = "random"


@dataclass(frozen=True)
class RecognizerSpec(ComponentSpec):
    """A pretrained, frozen recognizer: face image(s) -> embeddings.

    :param distance: how its embeddings compare (``euclidean`` or ``cosine``).
    :param published: published results, e.g. ``{"lfw_accuracy": 0.9938}``.
    """

    kind: ClassVar[str] = "recognizer"
    input_size: tuple[int, int] = (150, 150)
    embedding_size: int = 128
    alignment: str = ""
    distance: str = "euclidean"
    published: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DetectorSpec(ComponentSpec):
    """A face detector: RGB image -> boxes (N, 4), scores (N,), landmarks (N, 5, 2) or None."""

    kind: ClassVar[str] = "detector"
    landmarks: bool = True


@dataclass(frozen=True)
class LandmarkerSpec(ComponentSpec):
    """A landmarker: RGB image + face boxes -> (N, num_points, 2) points.

    :param num_points: how many points it predicts per face.
    :param scheme: the point convention (``ibug_68``, ``five``, ``dlib_5``; see
        ``harness.metrics.landmarks.SCHEMES``), which says how its points compare
        with annotations of another scheme.
    :param input: what it needs besides the image: ``"box"`` (a face box, e.g. the
        ground truth's or a detector's).
    """

    kind: ClassVar[str] = "landmarker"
    num_points: int = 68
    scheme: str = "ibug_68"
    input: str = "box"


@dataclass(frozen=True)
class LivenessSpec(ComponentSpec):
    """A presentation-attack detector: face image -> bona fide score (higher = live)."""

    kind: ClassVar[str] = "liveness"
    trainable: bool = False
    input_size: tuple[int, int] = (80, 80)


@dataclass(frozen=True)
class InpainterSpec(ComponentSpec):
    """A face inpainter: meshed face -> restored face (same size, RGB uint8)."""

    kind: ClassVar[str] = "inpainter"
    trainable: bool = False


@dataclass(frozen=True)
class DatasetSpec(ComponentSpec):
    """A reader for one data layout.

    :param tasks: what the data serves: ``train``, ``verification``,
        ``detection``, ``liveness``, ``inpainting``, ``landmarks``.
    :param synthetic: the data is generated, not real faces (stated in reports).
    """

    kind: ClassVar[str] = "dataset"
    tasks: tuple[str, ...] = ("verification",)
    synthetic: bool = False


@dataclass(frozen=True)
class EngineSpec(ComponentSpec):
    """Trains and runs the components of one framework, so the core stays framework-free."""

    kind: ClassVar[str] = "engine"


@dataclass(frozen=True)
class CommandSpec:
    """A CLI command contributed by a plugin.

    :param name: the command name under ``harness``.
    :param command: a ``click.Command`` or a ``"module:attr"`` naming one.
    :param summary: one line for ``harness --help``.
    """

    kind: ClassVar[str] = "command"
    name: str
    command: Any
    summary: str = ""


#: kind -> spec class, in the order ``harness list`` shows them.
KINDS: Mapping[str, type[ComponentSpec]] = types.MappingProxyType(
    {
        "backbone": BackboneSpec,
        "loss": LossSpec,
        "recognizer": RecognizerSpec,
        "detector": DetectorSpec,
        "landmarker": LandmarkerSpec,
        "liveness": LivenessSpec,
        "inpainter": InpainterSpec,
        "dataset": DatasetSpec,
        "engine": EngineSpec,
    }
)


def settings_from_options(cls: type, group: str, values: Any) -> Any:
    """``cls(**values)`` for ``-o GROUP.KEY=VALUE`` task settings (a dataclass that parses and
    checks its own fields), refusing an unknown key in one line that lists the valid ones."""
    names = [f.name for f in dataclasses.fields(cls)]
    stray = [k for k in (values or {}) if k not in names]
    if stray:
        raise ConfigError(f"-o {group}.{stray[0]}: unknown setting; valid: {', '.join(names)}")
    return cls(**dict(values or {}))
