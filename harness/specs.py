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
import importlib
import importlib.util
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

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
    "LivenessSpec",
    "LossSpec",
    "NoOptions",
    "OptionError",
    "RecognizerSpec",
    "WeightsSpec",
    "framework_available",
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
        """Build the options dataclass from raw values (strings from the CLI allowed).

        :raises OptionError: an unknown key, or a value that does not convert.
        """
        values = dict(values or {})
        fields = self.option_fields()
        unknown = sorted(set(values) - set(fields))
        if unknown:
            valid = ", ".join(sorted(fields)) or "(none)"
            raise OptionError(
                f"{self.kind} {self.name!r} has no option {unknown[0]!r}; "
                f"valid options: {valid}"
            )
        hints = typing.get_type_hints(self.options)
        converted = {
            key: parse_option_value(hints.get(key, Any), raw, where=f"{self.name}.{key}")
            for key, raw in values.items()
        }
        try:
            return self.options(**converted)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"{self.kind} {self.name!r}: {exc}") from exc

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


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_option_value(hint: Any, raw: Any, where: str = "option") -> Any:
    """Convert ``raw`` (usually a CLI string) to the type ``hint`` declares."""
    if not isinstance(raw, str):
        return raw
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return raw
    if origin is typing.Literal:
        for choice in args:
            if str(choice) == raw:
                return choice
        raise OptionError(f"{where}={raw!r}: expected one of {', '.join(map(str, args))}")
    if origin in (typing.Union, types.UnionType):
        if raw.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return parse_option_value(arg, raw, where)
            except OptionError as exc:
                errors.append(str(exc))
        raise OptionError("; ".join(errors))
    if origin in (tuple, list):
        parts = [p for p in raw.replace(";", ",").split(",") if p.strip()]
        inner = args[0] if args else str
        values = [parse_option_value(inner, p.strip(), where) for p in parts]
        return tuple(values) if origin is tuple else values
    if hint is bool:
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise OptionError(f"{where}={raw!r}: expected a boolean (true/false)")
    if hint in (int, float):
        try:
            return hint(raw)
        except ValueError:
            raise OptionError(
                f"{where}={raw!r}: expected {'an integer' if hint is int else 'a number'}"
            ) from None
    if hint is str:
        return raw
    return raw


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
        ``detection``, ``liveness``, ``inpainting``.
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
        "liveness": LivenessSpec,
        "inpainter": InpainterSpec,
        "dataset": DatasetSpec,
        "engine": EngineSpec,
    }
)
