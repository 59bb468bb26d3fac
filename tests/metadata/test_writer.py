"""The metadata writer and reader on their own: the schema against tflite-support's, min_parser_version,
insertion into a model, hostile bytes, and the checks of the metadata options and labels."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from io import BytesIO

import flatbuffers
import pytest
from hypothesis import given
from hypothesis import strategies as st

import exporter
from exporter.errors import DataError, ModelFileError, UsageError
from exporter.tflite_metadata.content import Facts, model_metadata
from exporter.tflite_metadata.flatbuf import MAX_ITEMS, pack, unpack
from exporter.tflite_metadata.info import ModelInfo
from exporter.tflite_metadata.model_file import METADATA_NAME, insert, read
from exporter.tflite_metadata.schema import TABLES, min_parser_version
from tests.metadata.readers import run_in
from tests.metadata.test_round_trip import close
from tests.test_cli import run
from tests.test_fuzz import budget, mutations

FILE = {"name": "labels.txt", "type": "TENSOR_AXIS_LABELS"}


def tensor(**extra) -> dict:
    return {"name": "t", "content": {"content_properties_type": "FeatureProperties", "content_properties": {}}, **extra}


def model(*, inputs=(), outputs=(), files=None, **subgraph) -> dict:
    meta = {"name": "m", "subgraph_metadata": [{"input_tensor_metadata": list(inputs) or [tensor()],
                                                "output_tensor_metadata": list(outputs) or [tensor()], **subgraph}]}
    return {**meta, "associated_files": files} if files else meta


# Every table of the schema at least once, and each member that raises min_parser_version (metadata_version.cc)
CASES = [
    (model(inputs=[tensor(process_units=[{"options_type": "NormalizationOptions",
                                          "options": {"mean": [127.5], "std": [127.5]}}], stats={"max": [1.0]},
                          dimension_names=["batch", "x"])], outputs=[tensor(associated_files=[FILE])]), "1.0.0"),
    (model(inputs=[{"name": "img", "content": {"content_properties_type": "ImageProperties", "content_properties": {
        "color_space": "RGB", "default_size": {"width": 224, "height": 160}}, "range": {"min": 1, "max": 2}}}],
        outputs=[{"name": "box", "content": {"content_properties_type": "BoundingBoxProperties", "content_properties": {
            "index": [1, 0, 3, 2], "type": "CENTER", "coordinate_type": "PIXEL"}}}]), "1.0.0"),
    (model(outputs=[tensor(process_units=[
        {"options_type": "ScoreCalibrationOptions", "options": {"score_transformation": "LOG", "default_score": 0.25}},
        {"options_type": "ScoreThresholdingOptions", "options": {"global_score_threshold": 0.5}}])]), "1.0.0"),
    (model(files=[{"name": "vocab.txt", "type": "VOCABULARY", "locale": "fr"}]), "1.0.1"),
    (model(input_process_units=[{"options_type": "BertTokenizerOptions", "options": {"vocab_file": [FILE]}}]), "1.1.0"),
    (model(input_process_units=[{"options_type": "SentencePieceTokenizerOptions",
                                 "options": {"sentencePiece_model": [FILE]}}]), "1.1.0"),
    (model(input_tensor_groups=[{"name": "g", "tensor_names": ["a", "b"]}]), "1.2.0"),
    (model(inputs=[tensor(process_units=[{"options_type": "RegexTokenizerOptions",
                                          "options": {"delim_regex_pattern": "[ ]", "vocab_file": [FILE]}}])]), "1.2.1"),
    (model(inputs=[{"name": "a", "content": {"content_properties_type": "AudioProperties",
                                             "content_properties": {"sample_rate": 16000, "channels": 1}}}]), "1.3.0"),
    (model(outputs=[tensor(associated_files=[{"name": "i.ldb", "type": "SCANN_INDEX_FILE"}])]), "1.4.0"),
    (model(outputs=[tensor(associated_files=[{**FILE, "version": "7"}])]), "1.4.1"),
    (model(custom_metadata=[{"name": "c", "data": [1, 2, 3]}]), "1.5.0"),
]


def test_every_table_reads_back_in_tflite_support_with_its_min_parser_version(readers, tmp_path):
    assert {t for meta, _ in CASES for t in _tables(meta, "ModelMetadata")} == set(TABLES)    # all covered
    paths = []
    for k, (meta, _) in enumerate(CASES):
        paths.append(tmp_path / f"{k}.bin")
        paths[-1].write_bytes(pack(meta))
    theirs = run_in(readers["tflite-support"], "parse_buffers.py", *paths)
    for (meta, version), found, path in zip(CASES, theirs, paths):
        assert close(found["json"], meta) and close(unpack(path.read_bytes()), meta)
        assert found["min_parser_version"] == min_parser_version(meta) == version


def _tables(value: dict, table: str):
    yield table
    for f in TABLES[table]:
        v = value.get(f.name)
        if v is not None and f.kind in ("table", "union"):
            member = value[f"{f.name}_type"] if f.kind == "union" else f.type
            for item in v if f.vector else [v]:
                yield from _tables(item, member)


def test_pack_refuses_what_the_schema_does_not_have():
    with pytest.raises(ValueError, match="table ModelMetadata has no field colour"):
        pack({"name": "m", "colour": "red"})
    with pytest.raises(ValueError, match="ColorSpaceType has no member 'CMYK'"):
        pack({"subgraph_metadata": [{"input_tensor_metadata": [{"content": {"content_properties_type": "ImageProperties",
                                                                            "content_properties": {"color_space": "CMYK"}}}]}]})


def test_insertion_replaces_earlier_metadata_and_is_deterministic(tiny_tflite):
    first = insert(tiny_tflite, pack({"name": "a"}), {"labels.txt": b"x\n", "more.txt": b"y\n"})
    again = insert(first, pack({"name": "b"}), {"labels.txt": b"z\n"})
    assert again == insert(first, pack({"name": "b"}), {"labels.txt": b"z\n"})           # same bytes every time
    assert read(again) == {"metadata": {"name": "b"}, "associated_files": ["labels.txt"]}
    import tflite

    m = tflite.Model.GetRootAs(again, 0)
    assert [m.Metadata(i).Name() for i in range(m.MetadataLength())].count(METADATA_NAME.encode()) == 1
    with zipfile.ZipFile(BytesIO(again)) as archive:
        (info,) = archive.infolist()
        assert info.compress_type == zipfile.ZIP_STORED and info.date_time == (1980, 1, 1, 0, 0, 0)
        assert archive.read("labels.txt") == b"z\n"


@pytest.mark.reliability(42)
@given(data=st.data())
@budget(150)
def test_hostile_bytes_are_read_or_refused_as_not_a_valid_model(tiny_tflite, data):
    model = insert(tiny_tflite, pack(model_metadata_example()), {"labels.txt": b"a\nb\n"})
    start = model.index(b"M001") - 4                      # the metadata buffer: mutate there, or anywhere
    region = data.draw(st.sampled_from([(start, start + 400), (0, len(model))]))
    cut = data.draw(mutations(model[region[0]:region[1]]))
    hostile = model[:region[0]] + cut + model[region[1]:]
    try:
        found = read(hostile)
    except ModelFileError as exc:
        assert exc.exit_code == 2
    else:
        assert found is None or isinstance(found["metadata"], dict)


def model_metadata_example() -> dict:
    return CASES[0][0] | {"description": "é" * 40, "author": "a", "version": "1"}


def test_tables_sharing_their_children_stop_at_the_item_budget():
    b = flatbuffers.Builder(1024)
    name = b.CreateString("t")
    b.StartObject(len(TABLES["TensorMetadata"]))
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    shared = b.EndObject()
    n = 2000

    def repeated(offset):
        b.StartVector(4, n, 4)
        for _ in range(n):
            b.PrependUOffsetTRelative(offset)
        return b.EndVector()

    tensors = repeated(shared)
    b.StartObject(len(TABLES["SubGraphMetadata"]))
    b.PrependUOffsetTRelativeSlot(2, tensors, 0)
    subgraphs = repeated(b.EndObject())
    b.StartObject(len(TABLES["ModelMetadata"]))
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    b.Finish(b.EndObject(), b"M001")
    with pytest.raises(ValueError, match=f"more than {MAX_ITEMS:,} items"):       # 4 million tables otherwise
        unpack(bytes(b.Output()))


@pytest.mark.parametrize("args,message", [
    (["--author", "x" * 257], "--author is 257 characters long; at most 256 fit in the model's metadata"),
    (["--model-description", "caf\udce9 au lait"],
     "--model-description is not valid UTF-8 text (character 4 is an undecodable byte, 0xe9)"),
    (["--model-name", "digits\x07"], "--model-name holds the control character U+0007"),
    (["--model-name", "abc\u202edcba"], "--model-name holds the control character U+202E"),
    (["--model-version", ""], "--model-version is empty: give the model's version"),
    (["--license", "MIT\x00"], "--license holds the control character U+0000"),
])
def test_bad_metadata_options_exit_2_before_any_work(args, message, tmp_path):
    result = run(["export", "--demo", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not (tmp_path / "out").exists()


def test_a_non_utf8_command_line_argument_is_refused(tmp_path):
    done = subprocess.run([sys.executable, "-m", "exporter", "export", "--demo", "--author", b"Jos\xe9",
                           "--out", str(tmp_path / "out")], capture_output=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert b"--author is not valid UTF-8 text (character 4 is an undecodable byte, 0xe9)" in done.stderr
    assert b"Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_the_python_api_names_its_parameters():
    with pytest.raises(UsageError, match=r"^author= must be text \(str\), not bytes$"):
        exporter.export(demo=True, author=b"Jane", progress=False)
    with pytest.raises(UsageError, match="model_name= is 300 characters long"):
        exporter.export(demo=True, model_name="n" * 300, progress=False)
    assert ModelInfo(description="two\nlines\tok").checked().given() == ["model_description"]   # allowed there
    with pytest.raises(UsageError, match="model_name= holds the control character U\\+000A"):
        ModelInfo(name="two\nlines").checked()


def test_labels_that_do_not_fit_the_output_exit_2(demo, demo_bundle, tmp_path, tiny_tflite):
    (tmp_path / "three.txt").write_text("a\nb\nc\n", encoding="utf-8")
    result = run(["export", "--demo", "--labels", str(tmp_path / "three.txt"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "labels file has 3 names but the model has 10 classes" in result.stderr
    given = run(["export", str(demo_bundle[1] / "model.tflite"), "--labels", str(tmp_path / "three.txt"),
                 "--out", str(tmp_path / "out")])
    assert given.exit_code == 2 and "labels file has 3 names but the model has 10 classes" in given.stderr
    from exporter.analysis.graph import Graph
    from exporter.io_names import io_record

    graph = Graph.from_bytes(tiny_tflite)                 # the writer's own check, should anything reach it
    facts = Facts(info=ModelInfo(name="t", version="1"), io=io_record(tiny_tflite, graph, None), graph=graph,
                  labels=["a", "b", "c"])
    with pytest.raises(DataError, match="the labels hold 3 names but output 'output_0' gives 10 scores"):
        model_metadata(facts)


@pytest.mark.reliability(42)
@given(data=st.data())
@budget(40)
def test_inspect_answers_a_documented_exit_code_on_damaged_metadata(tiny_tflite, tmp_path_factory, data):
    from exporter.cli import main
    from tests.test_fuzz import DOCUMENTED

    model = insert(tiny_tflite, pack(model_metadata_example()), {"labels.txt": b"a\nb\n"})
    start = model.index(b"M001") - 4
    path = tmp_path_factory.mktemp("inspect") / "m.tflite"
    path.write_bytes(model[:start] + data.draw(mutations(model[start:start + 400])) + model[start + 400:])
    assert main(["inspect", str(path), "--json"]) in DOCUMENTED
