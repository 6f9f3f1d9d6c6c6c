"""Probe graphs for a device's latency table: one op type (alone, or with the IO ops it needs) at a few shapes and
channel counts, converted at fp32 and full-integer int8 exactly as the exporter converts a network.

The grid is spread rather than dense: cost models are fitted over MACs and bytes moved (see ``profile``), so a few
probes per op type spanning 1/1 to 1/16 of the packed Full HD frame (544 x 960) and thin to wide channels suffice.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from tflite_isp.core import atomic
from tflite_isp.core.tf import keras, tf
from tflite_isp.export import convert
from tflite_isp.nets.layers import SpaceToDepth
from tflite_isp.run import flatbuffer, litert

FULL = (544, 960)  # packed Full HD RAW
SCALES = {1: (544, 960), 2: (272, 480), 4: (136, 240), 8: (68, 120), 16: (34, 60)}
PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class Probe:
    """One probe graph: ``op`` (a key of ``BUILDERS``) on a (1, H, W, C) input, ``cout`` output channels where the
    op has them, ``extra`` settings (activation, block size), at ``precision``."""

    op: str
    hw: tuple
    cin: int
    precision: str
    cout: int | None = None
    extra: tuple = field(default_factory=tuple)

    @property
    def name(self) -> str:
        parts = [self.op, f"{self.hw[0]}x{self.hw[1]}", f"c{self.cin}"]
        parts += [f"o{self.cout}"] if self.cout else []
        parts += [f"{k}{v}" for k, v in self.extra]
        return "-".join(parts + [self.precision])

    def to_dict(self) -> dict:
        return {"name": self.name, "op": self.op, "hw": list(self.hw), "cin": self.cin, "cout": self.cout,
                "extra": dict(self.extra), "precision": self.precision}


def _second(shape):
    return keras.Input(batch_size=1, shape=shape)


def _binary(layer, broadcast=False):
    def build(x, p):
        y = _second((1, 1, p.cin) if broadcast else x.shape[1:])
        return [y], layer()([x, y])
    return build


def _single(make):
    def build(x, p):
        return [], make(p)(x)
    return build


L = keras.layers
BUILDERS = {  # op key -> build(x, probe) -> (extra inputs, output)
    "conv3x3": _single(lambda p: L.Conv2D(p.cout, 3, padding="same", activation=dict(p.extra).get("act"))),
    "conv1x1": _single(lambda p: L.Conv2D(p.cout, 1, activation=dict(p.extra).get("act"))),
    "dwconv3x3": _single(lambda p: L.DepthwiseConv2D(3, padding="same")),
    "tconv2x2": _single(lambda p: L.Conv2DTranspose(p.cout, 2, strides=2)),
    "maxpool": _single(lambda p: L.MaxPooling2D(2)),
    "d2s": _single(lambda p: _pixel_shuffle(dict(p.extra).get("b", 2))),
    "s2d": _single(lambda p: SpaceToDepth(2)),
    "resize": _single(lambda p: L.UpSampling2D(2, interpolation="bilinear")),
    "mean": _single(lambda p: L.GlobalAveragePooling2D(keepdims=True)),
    "sigmoid": _single(lambda p: L.Activation("sigmoid")),
    "tanh": _single(lambda p: L.Activation("tanh")),
    "leaky": _single(lambda p: L.LeakyReLU(0.2)),
    "prelu": _single(lambda p: L.PReLU(shared_axes=[1, 2])),
    "relu": _single(lambda p: L.ReLU()),
    "relu6": _single(lambda p: L.ReLU(6.0)),
    "concat": _binary(L.Concatenate),
    "add": _binary(L.Add),
    "mul": _binary(L.Multiply, broadcast=True),
}


def _conv(c, k=3, act=None):
    return L.Conv2D(c, k, padding="same", activation=act)


def _chain_isp(x, c):
    """A plain full-size stack: conv tanh, conv relu, conv to 12, depth-to-space."""
    y = _conv(c, act="relu")(L.Activation("tanh")(_conv(c)(x)))
    return _pixel_shuffle(2)(_conv(12)(y))


def _chain_unet(x, c):
    """One U-Net level: conv, max-pool, conv at 2c, transposed conv back, concatenation with the skip, conv."""
    skip = _conv(c, act="relu")(x)
    y = _conv(2 * c, act="relu")(L.MaxPooling2D(2)(skip))
    y = L.Concatenate()([L.Conv2DTranspose(c, 2, strides=2)(y), skip])
    return _conv(c, act="relu")(y)


def _chain_res(x, c):
    """A depthwise-separable residual block with channel attention (global mean, 1x1 sigmoid, multiply)."""
    y = _conv(c, 1)(x)
    z = L.LeakyReLU(0.2)(_conv(c, 1)(L.DepthwiseConv2D(3, padding="same")(y)))
    y = L.Add()([y, z])
    g = L.Conv2D(c, 1, activation="sigmoid")(L.GlobalAveragePooling2D(keepdims=True)(y))
    return L.Multiply()([y, g])


CHAIN_BUILDERS = {"isp": _chain_isp, "unet": _chain_unet, "res": _chain_res}
BUILDERS["chain"] = lambda x, p: ([], CHAIN_BUILDERS[dict(p.extra)["kind"]](x, p.cout))


def _pixel_shuffle(block):
    from tflite_isp.nets.layers import PixelShuffle  # lazy: the nets package loads its whole zoo

    return PixelShuffle(block)


def _grid(op, cases, precision):
    return [Probe(op, SCALES[s], cin, precision, cout, tuple(extra.items())) for s, cin, cout, extra in cases]


# (scale, cin, cout, extra): spread over size and width; thin channels at full size, wide ones at low resolution
# (the shapes a U-Net produces), so each fitted model stays inside its data.
CASES = {
    "conv3x3": [(1, 4, 16, {}), (1, 16, 16, {"act": "relu"}), (2, 16, 32, {}), (2, 32, 32, {"act": "relu"}),
                (4, 32, 64, {}), (4, 64, 64, {}), (8, 64, 128, {"act": "relu"}), (16, 128, 256, {}),
                (2, 8, 8, {}), (1, 4, 4, {}), (1, 8, 8, {"act": "relu"}), (4, 4, 4, {})],
    "conv1x1": [(1, 4, 4, {}), (1, 16, 16, {}), (1, 16, 12, {}), (2, 32, 16, {}), (4, 64, 32, {}), (8, 128, 64, {}),
                (16, 256, 128, {})],
    "dwconv3x3": [(1, 16, None, {}), (2, 32, None, {}), (4, 64, None, {}), (16, 256, None, {})],
    "tconv2x2": [(2, 32, 16, {}), (4, 64, 32, {}), (8, 128, 64, {}), (16, 256, 128, {})],
    "maxpool": [(1, 16, None, {}), (2, 32, None, {}), (8, 128, None, {})],
    "d2s": [(1, 12, None, {"b": 2}), (2, 48, None, {"b": 4}), (4, 64, None, {"b": 2})],
    "s2d": [(1, 4, None, {}), (2, 16, None, {}), (8, 64, None, {})],
    "resize": [(2, 16, None, {}), (4, 32, None, {}), (16, 128, None, {})],
    "mean": [(1, 16, None, {}), (4, 64, None, {}), (16, 256, None, {})],
    "concat": [(1, 16, None, {}), (2, 32, None, {}), (8, 128, None, {})],
    "add": [(1, 16, None, {}), (2, 32, None, {}), (8, 128, None, {})],
    "mul": [(1, 16, None, {}), (4, 64, None, {}), (16, 256, None, {})],
    "sigmoid": [(1, 16, None, {}), (4, 64, None, {})],
    "tanh": [(1, 16, None, {}), (4, 64, None, {})],
    "leaky": [(1, 16, None, {}), (4, 64, None, {})],
    "prelu": [(1, 4, None, {}), (1, 16, None, {}), (4, 64, None, {})],
    "relu": [(1, 16, None, {}), (4, 64, None, {})],
    "relu6": [(1, 16, None, {}), (4, 64, None, {})],
}
# Several-op graphs: what the per-graph terms (overhead and scale of the sum of op costs) are fitted on.
CHAINS = [(1, 4, 8, {"kind": "isp"}), (2, 16, 16, {"kind": "unet"}), (4, 32, 32, {"kind": "res"}),
          (8, 64, 64, {"kind": "unet"})]
# INT8 probes with float32 IO: the QUANTIZE / DEQUANTIZE pair an exporter's --io_type float32 file adds.
IO_CASES = [(1, 4, 16, {}), (4, 32, 32, {})]
# Whole networks of the search space at Full HD: in a graph each op reads what the previous one wrote, out of the
# cache, and XNNPACK's per-op dispatch adds up; single-op probes see neither. The first GRAPHS draws of GRAPH_SEED
# under GRAPH_MAX_GMAC (the predictor benchmark holds out another seed's draws).
GRAPHS, GRAPH_SEED, GRAPH_MAX_GMAC = 12, 1, 8.0


def probe_set(precisions=PRECISIONS, ops=None, scale_limit: int | None = None, graphs: int = GRAPHS) -> list:
    """The probe grid (every op key of ``CASES``, the IO pair, the chains and ``graphs`` whole networks unless
    ``ops`` names some: op keys, "io", "chain", "graph"; ``scale_limit`` drops probes larger than 1/scale_limit of
    the frame, for quick tests)."""
    probes = []
    for precision in precisions:
        if ops is None or "chain" in ops:
            cases = [c for c in CHAINS if scale_limit is None or c[0] >= scale_limit]
            probes += _grid("chain", cases, precision)
        if (ops is None or "graph" in ops) and scale_limit is None:
            probes += [Probe("graph", FULL, 4, precision, extra=(("draw", k),)) for k in range(graphs)]
        for op in [o for o in ops or CASES if o not in ("io", "chain", "graph")]:
            cases = [c for c in CASES[op] if scale_limit is None or c[0] >= scale_limit]
            probes += _grid(op, cases, precision)
        if precision == "int8" and (ops is None or "io" in ops):
            cases = [c for c in IO_CASES if scale_limit is None or c[0] >= scale_limit]
            probes += _grid("conv3x3", cases, "int8_fio")
    return probes


@cache
def graph_sections(n: int, seed: int = GRAPH_SEED, max_gmac: float = GRAPH_MAX_GMAC) -> tuple:
    """The first ``n`` networks the search space draws from ``seed`` under ``max_gmac`` at Full HD, as shipped
    (re-parameterised blocks fused)."""
    from tflite_isp.nets import architectures, stats  # lazy: the nets package loads its whole zoo
    from tflite_isp.search import space

    out = []
    for section in space.sample(seed):
        shipped = architectures.deploy_form(section)
        if stats.count_macs(architectures.build(shipped, height=FULL[0], width=FULL[1], batch=1)) < max_gmac * 1e9:
            out.append(shipped)
        keras.backend.clear_session()
        if len(out) == n:
            return tuple(out)


def build(probe: Probe):
    """The probe's Keras model (inputs: the main (1, H, W, Cin) tensor first)."""
    if probe.op == "graph":
        from tflite_isp.nets import architectures  # lazy: as above

        draw = dict(probe.extra)["draw"]
        section = graph_sections(max(GRAPHS, draw + 1))[draw]
        return architectures.build(section, height=probe.hw[0], width=probe.hw[1], batch=1)
    x = keras.Input(batch_size=1, shape=(*probe.hw, probe.cin), name="raw")
    extra, y = BUILDERS[probe.op](x, probe)
    return keras.Model([x, *extra] if extra else x, y, name=probe.op)


def _representative(model, n: int = 2):
    rng = np.random.default_rng(0)

    def generate():
        for _ in range(n):
            yield [rng.random((1, *i.shape[1:]), dtype=np.float32) for i in model.inputs]
    return generate


def convert_probe(probe: Probe) -> bytes:
    """``.tflite`` bytes as the exporter makes them: fp32, or full-integer int8 with int8 IO (``int8_fio``: float
    IO, i.e. with QUANTIZE / DEQUANTIZE); random calibration data is enough for timing, random weights too (drawn
    again where XNNPACK would refuse the file, see ``loadable``)."""
    return loadable(lambda _seed: _convert_once(probe))


def loadable(convert_seeded, attempts: int = 4) -> bytes:
    """``convert_seeded(seed)`` with Keras weights drawn from seeds 0, 1, ...: the first file XNNPACK takes whole,
    else the last. An untrained net can have a unit dead on every input (a squeeze-excite's squeeze, most often);
    its INT8 range collapses and XNNPACK refuses the file, which says nothing of the op's or network's speed."""
    for seed in range(attempts):
        keras.utils.set_random_seed(seed)
        data = convert_seeded(seed)
        keras.backend.clear_session()
        if not litert.xnnpack_refusals(flatbuffer.parse(data)):
            break
    return data


def _convert_once(probe: Probe) -> bytes:
    model = build(probe)
    name = "fp32" if probe.precision == "fp32" else "int8"
    precision = convert.precisions()[name]
    options = {}
    if precision.representative:
        options = {"representative": _representative(model),
                   "io_type": "float32" if probe.precision == "int8_fio" else "int8"}
    shapes = [tuple(i.shape) for i in model.inputs]
    if len(shapes) == 1:
        return convert.convert(model, shapes[0], precision, **options)
    return _convert_multi(model, shapes, precision, **options)


def _convert_multi(model, shapes, precision, **options) -> bytes:
    """Several-input probes (ADD, MUL, CONCATENATION): the converter settings of ``convert`` with a signature of
    several tensors."""
    specs = [tf.TensorSpec(s, tf.float32, name=f"in{i}") for i, s in enumerate(shapes)]
    fn = tf.function(lambda *xs: model(list(xs), training=False)).get_concrete_function(*specs)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
    converter.optimizations = [getattr(tf.lite.Optimize, o) for o in precision.optimizations]
    if precision.supported_ops:
        converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, o) for o in precision.supported_ops]
    if precision.representative:
        converter.representative_dataset = options["representative"]
        dtype = {"int8": tf.int8, "float32": tf.float32}[options["io_type"]]
        converter.inference_input_type = converter.inference_output_type = dtype
    return converter.convert()


def write_probes(probes, folder, log=print) -> list:
    """Convert each probe into ``folder/<name>.tflite`` (reused when present); [(probe, path)]."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, probe in enumerate(probes):
        path = folder / f"{probe.name}.tflite"
        if not path.is_file():
            atomic.write_bytes(path, convert_probe(probe))
            keras.backend.clear_session()
        if log and (i + 1) % 20 == 0:
            log(f"converted {i + 1}/{len(probes)} probes")
        out.append((probe, path))
    return out


__all__ = ["BUILDERS", "CASES", "FULL", "GRAPHS", "PRECISIONS", "Probe", "SCALES", "build", "convert_probe",
           "graph_sections", "loadable", "probe_set", "write_probes"]
