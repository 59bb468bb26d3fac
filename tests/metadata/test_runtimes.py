"""A model with TFLite metadata runs as the model without it: LiteRT and TFLM give byte-identical outputs.

Also: which targets write metadata (android and linux: LiteRT on a CPU; not microcontrollers, Ethos-U or
the Edge TPU), several targets in one run, and a given .tflite that already carries metadata.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import exporter
from exporter import steps
from exporter.analysis.graph import Graph
from exporter.tflite_metadata.model_file import read
from exporter.tflite_metadata.step import describe
from tests.test_cli import run

pytestmark = pytest.mark.timeout(600)


def plain_and_described(sources: steps.Sources, target: str = "android"):
    """The converted model, and the same model with the metadata the export step writes for `target`."""
    request = steps.resolve(steps.ExportArgs(sources=sources, target=target))
    inputs = steps.check_data(request, steps.load(request))
    built = steps.build(request, inputs)
    return built.tflite, describe(request, inputs, built).tflite


@pytest.fixture(scope="module")
def demo_models(demo):
    return plain_and_described(steps.Sources(demo=True))


def raw_inputs(model: bytes, samples: int, seed: int) -> list[list[np.ndarray]]:
    """`samples` sets of random values over each input's whole dtype range, in the model's input order."""
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(seed)
    details = Interpreter(model_content=model).get_input_details()
    out = []
    for _ in range(samples):
        sample = []
        for d in details:
            if np.issubdtype(d["dtype"], np.integer):
                info = np.iinfo(d["dtype"])
                sample.append(rng.integers(info.min, info.max, d["shape"], endpoint=True).astype(d["dtype"]))
            else:
                sample.append(rng.random(d["shape"], dtype=np.float32))
        out.append(sample)
    return out


def litert_outputs(model: bytes, samples) -> list[bytes]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    out = []
    for sample in samples:
        for d, x in zip(interpreter.get_input_details(), sample):
            interpreter.set_tensor(d["index"], x)
        interpreter.invoke()
        out.append(b"".join(interpreter.get_tensor(d["index"]).tobytes() for d in interpreter.get_output_details()))
    return out


_TFLM = textwrap.dedent("""
    import json, sys
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime
    samples, n_inputs, n_outputs = np.load(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    count = len(samples.files) // n_inputs
    result = []
    for path in sys.argv[4:]:
        interpreter = runtime.Interpreter.from_bytes(open(path, "rb").read(), arena_size=1 << 20)
        outputs = []
        for s in range(count):
            for i in range(n_inputs):
                interpreter.set_input(samples[f"{s}_{i}"], i)
            interpreter.invoke()
            outputs.append(b"".join(interpreter.get_output(o).tobytes() for o in range(n_outputs)).hex())
        result.append(outputs)
    print(json.dumps(result))
""")


def tflm_outputs(tmp_path, models: list[bytes], samples) -> list[list[str]]:
    """Each model's outputs (hex) on the real TFLM interpreter, in a child process (TFLM may abort a process)."""
    np.savez(tmp_path / "samples.npz", **{f"{s}_{i}": x for s, sample in enumerate(samples) for i, x in enumerate(sample)})
    paths = []
    for k, model in enumerate(models):
        paths.append(tmp_path / f"m{k}.tflite")
        paths[-1].write_bytes(model)
    graph = Graph.from_bytes(models[0])
    done = subprocess.run([sys.executable, "-c", _TFLM, str(tmp_path / "samples.npz"), str(len(graph.inputs)),
                           str(len(graph.outputs)), *map(str, paths)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_demo_with_metadata_gives_byte_identical_outputs_in_litert_and_tflm(demo_models, tmp_path):
    plain, described = demo_models
    assert read(plain) is None and read(described)["associated_files"] == ["labels.txt"]
    assert len(described) > len(plain)
    assert Graph.from_bytes(plain).to_dict() == Graph.from_bytes(described).to_dict()   # same ops, tensors, weights
    samples = raw_inputs(plain, 64, seed=0)
    assert litert_outputs(plain, samples) == litert_outputs(described, samples)
    on_tflm = tflm_outputs(tmp_path, [plain, described], samples)
    assert on_tflm[0] == on_tflm[1] and len(on_tflm[0]) == 64
    assert len(set(on_tflm[0])) > 5                          # the outputs do depend on the inputs


def test_several_inputs_and_outputs_run_byte_identical_in_litert_and_tflm(tmp_path_factory, tmp_path):
    from tests.multi_io_models import write

    paths = write(tmp_path_factory.mktemp("two-io-runtimes"))
    plain, described = plain_and_described(steps.Sources(model=str(paths["model"]), calib=str(paths["calib"]),
                                                         eval=str(paths["eval"])))
    names = [t["name"] for t in read(described)["metadata"]["subgraph_metadata"][0]["input_tensor_metadata"]]
    assert sorted(names) == ["image", "meta"]
    samples = raw_inputs(plain, 32, seed=1)
    assert litert_outputs(plain, samples) == litert_outputs(described, samples)
    on_tflm = tflm_outputs(tmp_path, [plain, described], samples)
    assert on_tflm[0] == on_tflm[1] and len(set(on_tflm[0])) > 5


def test_linux_writes_metadata_and_the_microcontroller_none(demo):
    linux = exporter.export(demo=True, target="linux", progress=False, author="Jane Doe")
    assert linux.metadata["author"] == "Jane Doe" and linux.metadata["source"] == "edgex"
    assert any(n.startswith("model.tflite carries TFLite metadata: 'edgex demo'") for n in linux.notes)
    reports = exporter.export(demo=True, targets=["android", "microcontroller"], progress=False, license="MIT")
    assert [r.target for r in reports] == ["android", "microcontroller"]
    assert reports[0].metadata["license"] == "MIT" and reports[1].metadata is None     # one conversion, two models
    assert reports[0].to_dict()["measurements"]["model_size"]["value"] > \
        reports[1].to_dict()["measurements"]["model_size"]["value"]                      # model_size counts it


@pytest.mark.parametrize("args,message", [
    (["--target", "microcontroller", "--author", "Jane"],
     "--author: target microcontroller writes no TFLite metadata into its model (its runtime and tools do not read "
     "it); the targets that do: android, linux"),
    (["--target", "microcontroller", "--target", "edgetpu", "--model-name", "x"],
     "--model-name: target microcontroller writes no TFLite metadata"),
])
def test_metadata_options_for_targets_without_metadata_exit_2(args, message, tmp_path):
    result = run(["export", "--demo", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not (tmp_path / "out").exists()


def test_a_given_tflite_keeps_its_own_metadata_byte_for_byte(demo_bundle, tmp_path):
    _, bundle = demo_bundle
    model = bundle / "model.tflite"
    out = tmp_path / "again"
    result = run(["export", str(model), "--target", "linux", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert (out / "model.tflite").read_bytes() == model.read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metadata"]["source"] == "the input .tflite" and manifest["metadata"]["name"] == "edgex demo"
    assert any("(kept from the input .tflite)" in n for n in json.loads(result.stdout)["notes"])
    refused = run(["export", str(model), "--author", "Jane", "--out", str(tmp_path / "refused")])
    assert refused.exit_code == 2 and "already carries TFLite metadata (name 'edgex demo')" in refused.stderr
    assert "leave out --author" in refused.stderr and not (tmp_path / "refused").exists()


def test_a_given_tflite_without_metadata_gets_it_named_after_the_file(demo_models, tmp_path):
    from exporter.tflite_metadata.model_file import insert

    plain, _ = demo_models
    (tmp_path / "digits-v3.tflite").write_bytes(plain)
    report = exporter.export(str(tmp_path / "digits-v3.tflite"), target="android", progress=False,
                             model_version="3")
    assert (report.metadata["name"], report.metadata["version"]) == ("digits-v3", "3")
    assert report.metadata["inputs"][0]["normalization"] is None         # a bare .tflite: edgex does not know it
    (tmp_path / "broken.tflite").write_bytes(insert(plain, b"not a metadata flatbuffer", {}))
    report = exporter.export(str(tmp_path / "broken.tflite"), target="android", progress=False)
    assert report.metadata["source"] == "edgex" and report.metadata["name"] == "broken"
    assert any("TFLite metadata is not readable" in n and "edgex wrote its own" in n for n in report.notes)
