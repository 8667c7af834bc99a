"""Keras versions of the built-in backbones, layer for layer the torch ones.

Each builder takes the backbone's own options dataclass (the same
``-o resnet20.input_size=56,56`` a torch run takes) and returns a Keras
functional model ``(N, H, W, 3) -> (N, D)`` (channels-last, TensorFlow's
native layout).  Every Keras layer that holds weights is named after the
torch module it mirrors (``stages.0.1.body.0.0``), so
:func:`transfer_weights` copies a torch network into its Keras twin by name,
and a test proves the two compute the same embedding.

What keeps the two numerically identical:

* torch's symmetric padding is an explicit ``ZeroPadding2D`` before a
  ``valid`` convolution (Keras ``same`` pads bottom/right only at stride 2);
* before a fully connected layer that reads a whole feature map, the map is
  permuted to channels-first and flattened, so the FC weight is torch's
  matrix transposed;
* BatchNorm keeps torch's epsilon (1e-5; 1e-3 in Inception-ResNet-v1) and
  momentum (Keras ``momentum = 1 - torch momentum``); PReLU has one slope per
  channel (``shared_axes=[1, 2]``); LResNet's last BatchNorm scale is frozen.

:data:`BUILDERS` maps each backbone spec's name to its builder.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import keras
import numpy as np
from keras import layers

from harness.errors import ConfigError

__all__ = ["BUILDERS", "FLOPS_METHOD", "build_keras_backbone", "keras_flops", "keras_param_count", "transfer_weights"]

_SPHERE_UNITS = {20: (1, 2, 4, 1), 36: (2, 4, 8, 2)}
_LRESNET_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}
_CHANNELS = (64, 128, 256, 512)
#: MobileFaceNet's bottlenecks (t, c, n, s), as in facebench_plugins.backbones.mobilefacenet
_BOTTLENECKS = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


class _Net:
    """Makes named Keras layers with torch's semantics (padding, eps, momentum)."""

    def __init__(self, bn_eps: float = 1e-5):
        self.bn_eps = bn_eps

    def conv(self, x, name: str, cout: int, kernel, stride=1, padding=0, *, bias: bool = False,
             depthwise: bool = False):
        kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        pad = (padding, padding) if isinstance(padding, int) else tuple(padding)
        if any(pad):
            x = layers.ZeroPadding2D(((pad[0], pad[0]), (pad[1], pad[1])))(x)
        if depthwise:
            return layers.DepthwiseConv2D(kernel, stride, "valid", use_bias=bias, name=name)(x)
        return layers.Conv2D(cout, kernel, stride, "valid", use_bias=bias, name=name)(x)

    def bn(self, x, name: str, eps: float | None = None):
        return layers.BatchNormalization(momentum=0.9, epsilon=self.bn_eps if eps is None else eps,
                                         name=name)(x)

    @staticmethod
    def prelu(x, name: str):
        return layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25), shared_axes=[1, 2],
                            name=name)(x)

    @staticmethod
    def flatten_chw(x):
        """torch's ``flatten(x, 1)`` of an NCHW map: channels first, then rows, then columns."""
        return layers.Flatten()(layers.Permute((3, 1, 2))(x))


def _input(opts) -> keras.KerasTensor:
    h, w = opts.input_size
    return keras.Input((int(h), int(w), 3), name="image")


def _dropout(x, rate: float):
    return layers.Dropout(rate)(x) if rate > 0 else x


# --------------------------------------------------------- SphereFace ResNet
def _sphere(depth: int, opts) -> keras.Model:
    net, inp = _Net(), _input(opts)
    x = inp

    def conv_act(x, name: str, cout: int, stride: int):
        x = net.conv(x, f"{name}.0", cout, 3, stride, 1, bias=not opts.batch_norm)
        if opts.batch_norm:
            x = net.bn(x, f"{name}.1")
        return net.prelu(x, f"{name}.{2 if opts.batch_norm else 1}")

    for s, (cout, units) in enumerate(zip(_CHANNELS, _SPHERE_UNITS[depth])):
        x = conv_act(x, f"stages.{s}.0", cout, 2)
        for u in range(1, units + 1):
            body = conv_act(x, f"stages.{s}.{u}.body.0", cout, 1)
            body = conv_act(body, f"stages.{s}.{u}.body.1", cout, 1)
            x = layers.Add()([x, body])
    x = _dropout(net.flatten_chw(x), opts.dropout)
    out = layers.Dense(opts.embedding_size, name="fc")(x)
    return keras.Model(inp, out, name=f"resnet{depth}")


# ------------------------------------------------------------------ LResNet
def _ir_block(net: _Net, x, name: str, cin: int, cout: int, stride: int):
    b = net.bn(x, f"{name}.body.0")
    b = net.conv(b, f"{name}.body.1", cout, 3, 1, 1)
    b = net.bn(b, f"{name}.body.2")
    b = net.prelu(b, f"{name}.body.3")
    b = net.conv(b, f"{name}.body.4", cout, 3, stride, 1)
    b = net.bn(b, f"{name}.body.5")
    if stride != 1 or cin != cout:
        x = net.conv(x, f"{name}.shortcut.0", cout, 1, stride)
        x = net.bn(x, f"{name}.shortcut.1")
    return layers.Add()([b, x])


def _lresnet(depth: int, opts) -> keras.Model:
    net, inp = _Net(), _input(opts)
    x = net.conv(inp, "stem.0", _CHANNELS[0], 3, 1, 1)
    x = net.prelu(net.bn(x, "stem.1"), "stem.2")
    cin = _CHANNELS[0]
    for s, (cout, units) in enumerate(zip(_CHANNELS, _LRESNET_UNITS[depth])):
        for u in range(units):
            x = _ir_block(net, x, f"stages.{s}.{u}", cin, cout, 2 if u == 0 else 1)
            cin = cout
    x = net.bn(x, "bn")
    x = _dropout(net.flatten_chw(x), opts.dropout)
    x = layers.Dense(opts.embedding_size, name="fc")(x)
    features = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="features")
    out = features(x)
    features.gamma.trainable = False  # fixed at 1, as arcface_torch's
    return keras.Model(inp, out, name=f"lresnet{depth}")


# ------------------------------------------------------------- MobileFaceNet
def _mobilefacenet(opts) -> keras.Model:
    net, inp = _Net(), _input(opts)

    def block(x, name, cout, kernel, stride, padding, depthwise=False, linear=False):
        x = net.conv(x, f"{name}.conv", cout, kernel, stride, padding, depthwise=depthwise)
        x = net.bn(x, f"{name}.bn")
        return x if linear else net.prelu(x, f"{name}.prelu")

    x = block(inp, "conv1", 64, 3, 2, 1)
    x = block(x, "dw_conv1", 64, 3, 1, 1, depthwise=True)
    cin, i = 64, 0
    for t, c, n, s in _BOTTLENECKS:
        for r in range(n):
            stride, hidden, name = (s if r == 0 else 1), cin * t, f"blocks.{i}.conv"
            y = net.prelu(net.bn(net.conv(x, f"{name}.0", hidden, 1), f"{name}.1"), f"{name}.2")
            y = net.conv(y, f"{name}.3", hidden, 3, stride, 1, depthwise=True)
            y = net.prelu(net.bn(y, f"{name}.4"), f"{name}.5")
            y = net.bn(net.conv(y, f"{name}.6", c, 1), f"{name}.7")
            x = layers.Add()([x, y]) if (stride == 1 and cin == c) else y
            cin, i = c, i + 1
    x = block(x, "conv2", 512, 1, 1, 0)
    kernel = tuple(int(k) for k in x.shape[1:3])  # the global depthwise conv covers the whole map
    x = block(x, "linear7", 512, kernel, 1, 0, depthwise=True, linear=True)
    x = block(x, "linear1", opts.embedding_size, 1, 1, 0, linear=True)
    return keras.Model(inp, layers.Flatten()(x), name="mobilefacenet")


# ------------------------------------------------------ Inception-ResNet-v1
def _basic(net: _Net, x, name: str, cout: int, kernel, stride=1, padding=0):
    x = net.conv(x, f"{name}.0", cout, kernel, stride, padding)
    return layers.ReLU()(net.bn(x, f"{name}.1"))


def _residual(net: _Net, x, name: str, branches: list, channels: int, scale: float, relu: bool = True):
    outs = []
    for b, convs in enumerate(branches):
        y = x
        for j, (cout, kernel, padding) in enumerate(convs):
            y = _basic(net, y, f"{name}.branches.{b}" + (f".{j}" if len(convs) > 1 else ""), cout, kernel, 1,
                       padding)
        outs.append(y)
    up = net.conv(layers.Concatenate()(outs), f"{name}.project", channels, 1, bias=True)
    x = layers.Add()([x, layers.Rescaling(scale)(up)])
    return layers.ReLU()(x) if relu else x


def _reduction(net: _Net, x, name: str, branches: list):
    outs = []
    for b, convs in enumerate(branches):
        y = x
        for j, (cout, kernel, stride, padding) in enumerate(convs):
            y = _basic(net, y, f"{name}.branches.{b}" + (f".{j}" if len(convs) > 1 else ""), cout, kernel,
                       stride, padding)
        outs.append(y)
    outs.append(layers.MaxPooling2D(3, 2, "valid")(x))
    return layers.Concatenate()(outs)


def _block35(net, x, name):
    return _residual(net, x, name, [[(32, 1, 0)], [(32, 1, 0), (32, 3, 1)],
                                    [(32, 1, 0), (32, 3, 1), (32, 3, 1)]], 256, 0.17)


def _block17(net, x, name):
    return _residual(net, x, name, [[(128, 1, 0)], [(128, 1, 0), (128, (1, 7), (0, 3)), (128, (7, 1), (3, 0))]],
                     896, 0.10)


def _block8(net, x, name, scale=0.20, relu=True):
    return _residual(net, x, name, [[(192, 1, 0)], [(192, 1, 0), (192, (1, 3), (0, 1)), (192, (3, 1), (1, 0))]],
                     1792, scale, relu)


def _inception_resnet_v1(opts) -> keras.Model:
    net, inp = _Net(bn_eps=1e-3), _input(opts)
    x = _basic(net, inp, "stem.0", 32, 3, 2)
    x = _basic(net, x, "stem.1", 32, 3)
    x = _basic(net, x, "stem.2", 64, 3, 1, 1)
    x = layers.MaxPooling2D(3, 2, "valid")(x)
    x = _basic(net, x, "stem.4", 80, 1)
    x = _basic(net, x, "stem.5", 192, 3)
    x = _basic(net, x, "stem.6", 256, 3, 2)
    for i in range(5):
        x = _block35(net, x, f"repeat_1.{i}")
    x = _reduction(net, x, "mixed_6a", [[(384, 3, 2, 0)], [(192, 1, 1, 0), (192, 3, 1, 1), (256, 3, 2, 0)]])
    for i in range(10):
        x = _block17(net, x, f"repeat_2.{i}")
    x = _reduction(net, x, "mixed_7a", [[(256, 1, 1, 0), (384, 3, 2, 0)], [(256, 1, 1, 0), (256, 3, 2, 0)],
                                        [(256, 1, 1, 0), (256, 3, 1, 1), (256, 3, 2, 0)]])
    for i in range(5):
        x = _block8(net, x, f"repeat_3.{i}")
    x = _block8(net, x, "block8", 1.0, relu=False)
    x = _dropout(layers.GlobalAveragePooling2D()(x), opts.dropout)
    x = layers.Dense(opts.embedding_size, use_bias=False, name="last_linear")(x)
    out = layers.BatchNormalization(momentum=0.9, epsilon=1e-3, name="last_bn")(x)
    return keras.Model(inp, out, name="inception_resnet_v1")


#: backbone spec name -> Keras builder taking that backbone's options
BUILDERS: Mapping[str, Callable[[Any], keras.Model]] = {
    "resnet20": lambda o: _sphere(20, o),
    "resnet36": lambda o: _sphere(36, o),
    "lresnet50": lambda o: _lresnet(50, o),
    "lresnet100": lambda o: _lresnet(100, o),
    "mobilefacenet": _mobilefacenet,
    "inception_resnet_v1": _inception_resnet_v1,
}


def build_keras_backbone(name: str, options: Any) -> keras.Model:
    """The Keras twin of backbone ``name`` built from its options dataclass."""
    if name not in BUILDERS:
        raise ConfigError(f"the tf engine has no Keras version of backbone {name!r}; it has: "
                          f"{', '.join(sorted(BUILDERS))}")
    return BUILDERS[name](options)


def keras_param_count(model: keras.Model) -> int:
    """Parameters as torch counts them: every weight except BatchNorm's moving statistics."""
    return int(sum(int(np.prod(w.shape)) for w in model.weights
                   if not w.path.endswith(("moving_mean", "moving_variance"))))


#: how :func:`keras_flops` counts
FLOPS_METHOD = "2 x multiply-accumulates of every Conv2D, DepthwiseConv2D and Dense layer (Keras layer walk)"


def keras_flops(model: keras.Model) -> int:
    """FLOPs of one image: 2 x the MACs of the convolutions and dense layers (what torch's
    ``FlopCounterMode`` counts for these networks)."""
    macs = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "DepthwiseConv2D"):
            _n, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            macs += h * w * kh * kw * (cin * c if kind == "Conv2D" else c)
        elif kind == "Dense":
            macs += int(layer.input.shape[-1]) * int(layer.units)
    return int(2 * macs)


# ----------------------------------------------------------- weight transfer
def _layer_weights(kind: str, params: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """torch parameters/buffers of one module -> the Keras layer's weight list."""
    if kind == "Conv2D":
        out = [params["weight"].transpose(2, 3, 1, 0)]  # (O, I, kh, kw) -> (kh, kw, I, O)
    elif kind == "DepthwiseConv2D":
        out = [params["weight"].transpose(2, 3, 0, 1)]  # (C, 1, kh, kw) -> (kh, kw, C, 1)
    elif kind == "Dense":
        out = [params["weight"].T]
    elif kind == "PReLU":
        return [params["weight"].reshape(1, 1, -1)]
    elif kind == "BatchNormalization":
        return [params["weight"], params["bias"], params["running_mean"], params["running_var"]]
    else:
        raise ConfigError(f"cannot transfer weights into a Keras {kind} layer")
    return out + ([params["bias"]] if "bias" in params else [])


def transfer_weights(torch_model: Any, keras_model: keras.Model) -> int:
    """Copy every weight of a torch backbone into its Keras twin (matched by module name).

    :returns: the number of layers copied.
    :raises ConfigError: a torch module with weights has no Keras layer of its
        name, a Keras layer with weights was left out, or a shape differs.
    """
    state = {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    by_module: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        by_module.setdefault(module, {})[leaf] = value
    keras_layers = {layer.name: layer for layer in keras_model.layers if layer.weights}
    missing = sorted(set(by_module) - set(keras_layers))
    unfilled = sorted(set(keras_layers) - set(by_module))
    if missing or unfilled:
        raise ConfigError(f"torch and Keras {keras_model.name} differ: torch-only modules {missing[:5]}, "
                          f"Keras-only layers {unfilled[:5]}")
    for name, params in by_module.items():
        layer = keras_layers[name]
        new = _layer_weights(type(layer).__name__, params)
        old = layer.get_weights()
        if [w.shape for w in old] != [w.shape for w in new]:
            raise ConfigError(f"{keras_model.name} layer {name}: Keras shapes {[w.shape for w in old]} "
                              f"!= torch's {[w.shape for w in new]}")
        layer.set_weights([np.ascontiguousarray(w, dtype=np.float32) for w in new])
    return len(by_module)
