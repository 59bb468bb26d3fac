"""Compile the android bundles' Kotlin with Debian's kotlinc and run it on the JVM against tests/android_stubs.

Each bundle's `android/<Name>.kt` gets its own package (only its `package` line is rewritten), a small
driver (`Check.run(bundle, data)`) that feeds it the input files the test wrote, gives LiteRT's stand-in
the outputs LiteRT computed in Python, and prints what the class wrote into the input buffers, its
top-5 and every output it dequantized. Everything is compiled in one kotlinc call and run in one JVM.

Values cross as text: floats as their IEEE bits (`Float.floatToIntBits`), bytes as signed ints.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

STUBS = Path(__file__).resolve().parents[2] / "android_stubs"

DRIVER = '''\
package @@PKG@@

import android.content.Context
import android.content.res.AssetManager
import com.google.ai.edge.litert.Fake
import com.google.ai.edge.litert.TensorBuffer
import java.io.File

object Check {
    private fun ints(data: String, name: String): List<Int> = File(data, name).readLines().filter { it.isNotEmpty() }.map { it.toInt() }
    private fun floats(data: String, name: String): FloatArray = ints(data, name).map { java.lang.Float.intBitsToFloat(it) }.toFloatArray()
    private fun bits(values: FloatArray): String = values.joinToString(" ") { java.lang.Float.floatToIntBits(it).toString() }

    private fun writes(buffers: List<TensorBuffer>, out: StringBuilder) {
        for (b in buffers) {
            val d = b.data
            val values = if (d is ByteArray) d.joinToString(" ") { it.toInt().toString() }
                else if (d is FloatArray) bits(d) else if (d is IntArray) d.joinToString(" ") else "none"
            out.append("write ").append(b.slot).append(' ').append(b.written).append(' ').append(values).append('\\n')
        }
    }

    private fun top(recognitions: List<@@CLASS@@.Recognition>, out: StringBuilder) {
        for (r in recognitions) out.append("top ").append(java.lang.Float.floatToIntBits(r.score)).append(' ').append(r.label).append('\\n')
    }

    fun run(bundle: String, data: String): String {
        val out = StringBuilder()
        Fake.inputCount = @@N_IN@@
        Fake.outputCount = @@N_OUT@@
        var seen: List<TensorBuffer> = emptyList()
        Fake.onRun = { ins, outs ->
            seen = ins
            for (o in outs) {
                val raw = ints(data, "out_" + o.slot + ".txt")
                if (@@FLOAT_OUT@@[o.slot]) o.data = raw.map { java.lang.Float.intBitsToFloat(it) }.toFloatArray()
                else o.data = raw.map { it.toByte() }.toByteArray()
            }
        }
        val model = @@CLASS@@(Context(AssetManager(bundle)))
        out.append("threads ").append(Fake.options?.cpuOptions?.numThreads).append('\\n')
        out.append("asset ").append(Fake.asset).append('\\n')
        val inputs = (0 until @@N_IN@@).map { floats(data, "in_" + it + ".txt") }
        top(@@CLASSIFY@@, out)
        writes(seen, out)
        val all = model.run(inputs)
        for (k in all.indices) out.append("output ").append(k).append(' ').append(bits(all[k])).append('\\n')
@@BITMAP@@
        model.close()
        out.append("closed ").append(Fake.closed).append('\\n')
        return out.toString()
    }
}
'''

BITMAP = '''\
        val argb = ints(data, "pixels.txt").toIntArray()
        val bitmap = android.graphics.Bitmap.createBitmap(argb, @@CLASS@@.IMAGE_WIDTH, @@CLASS@@.IMAGE_HEIGHT, android.graphics.Bitmap.Config.ARGB_8888)
        out.append("bitmap\\n")
        top(model.classify(bitmap, 5), out)
        writes(seen, out)
'''

SNIPPET = '''\
package gradlecheck

fun snippet(): BuildScript {
    val script = BuildScript()
    with(script) {
@@SNIPPET@@
    }
    return script
}

fun describe(): String {
    val s = snippet()
    return "noCompress " + s.android.androidResources.noCompress.joinToString(",") + "\\n" +
        "implementation " + s.dependencies.implementations.joinToString(",") + "\\n"
}
'''


@dataclass
class Variant:
    """One bundle to check: its folder, the data folder the test filled, and how its driver calls the class."""

    name: str
    bundle: Path
    data: Path
    inputs: int
    float_outputs: list[bool]
    single: bool
    bitmap: bool
    source: str = field(default="")

    @property
    def kotlin(self) -> Path:
        return next((self.bundle / "android").glob("*.kt"))


def driver(v: Variant) -> tuple[str, str]:
    """(the variant's class source in its own package, its driver)."""
    class_name = v.kotlin.stem
    source = re.sub(r"^package .*$", f"package {v.name}", v.kotlin.read_text(), count=1, flags=re.M)
    call = "model.classify(inputs[0], 5)" if v.single else "model.classify(inputs, 5)"
    slots = {"PKG": v.name, "CLASS": class_name, "N_IN": str(v.inputs), "N_OUT": str(len(v.float_outputs)),
             "FLOAT_OUT": "booleanArrayOf(" + ", ".join("true" if f else "false" for f in v.float_outputs) + ")",
             "CLASSIFY": call, "BITMAP": BITMAP.replace("@@CLASS@@", class_name) if v.bitmap else ""}
    text = DRIVER
    for key, value in slots.items():
        text = text.replace(f"@@{key}@@", value)
    return source, text


def compile_and_run(variants: list[Variant], snippet: str, work: Path,
                    literals: list[str] = ()) -> tuple[dict[str, str], str, str]:
    """Compile the stubs, every variant, the Gradle snippet and `literals` in one kotlinc call; run them in one JVM.

    Args:
        literals: strings made into Kotlin literals by `kotlin_string`; the JVM prints them back.

    Returns:
        ({section: its output}: one per variant, "gradle" (the snippet's description) and "literals"),
        the snippet's description, kotlinc's diagnostics.
    """
    from targets.android.kotlin import kotlin_string

    assert shutil.which("kotlinc") and shutil.which("kotlin"), "Debian's kotlin is missing: `make sysdeps` installs it"
    src = work / "src"
    src.mkdir(parents=True)
    for v in variants:
        source, text = driver(v)
        (src / f"{v.name}_{v.kotlin.name}").write_text(source)
        (src / f"{v.name}_Check.kt").write_text(text)
    (src / "Snippet.kt").write_text(SNIPPET.replace("@@SNIPPET@@", snippet))
    calls = [f'    println("=== {v.name}")\n    print({v.name}.Check.run(args[{2 * i}], args[{2 * i + 1}]))'
             for i, v in enumerate(variants)]
    calls += ['    println("=== gradle")\n    print(gradlecheck.describe())', '    println("=== literals")']
    calls += [f"    println({kotlin_string(text)})" for text in literals]
    (src / "Main.kt").write_text("fun main(args: Array<String>) {\n" + "\n".join(calls) + "\n}\n")
    stubs = sorted(str(p) for p in STUBS.rglob("*.kt"))
    built = subprocess.run(["kotlinc", *stubs, *sorted(map(str, src.glob("*.kt"))), "-d", str(work / "classes")],
                           capture_output=True, text=True, timeout=300)
    diagnostics = "\n".join(line for line in (built.stdout + built.stderr).splitlines()
                            if "OpenJDK" not in line and "unable to find kotlin-stdlib" not in line)
    assert built.returncode == 0, diagnostics
    args = [str(p) for v in variants for p in (v.bundle, v.data)]
    ran = subprocess.run(["kotlin", "-cp", str(work / "classes"), "MainKt", *args], capture_output=True,
                         text=True, encoding="utf-8", timeout=120)
    assert ran.returncode == 0, ran.stderr
    sections = {}
    for part in ran.stdout.split("=== ")[1:]:
        head, _, body = part.partition("\n")
        sections[head] = body
    return sections, sections["gradle"], diagnostics


@dataclass
class Run:
    """What one driver printed: threads, asset, the FloatArray pass and the Bitmap pass."""

    threads: str = ""
    asset: str = ""
    closed: str = ""
    passes: list = field(default_factory=lambda: [{"top": [], "writes": {}}])
    outputs: dict = field(default_factory=dict)


def parse(text: str) -> Run:
    """The driver's lines as a Run: writes by slot ((kind, ints)), top as (label, float32), outputs as float32."""
    run = Run()
    for line in text.splitlines():
        head, _, rest = line.partition(" ")
        if head in ("threads", "asset", "closed"):
            setattr(run, head, rest)
        elif head == "bitmap":
            run.passes.append({"top": [], "writes": {}})
        elif head == "top":
            bits, _, label = rest.partition(" ")
            run.passes[-1]["top"].append((label, np.array([int(bits)], np.int32).view(np.float32)[0]))
        elif head == "write":
            slot, kind, *values = rest.split(" ")
            run.passes[-1]["writes"][int(slot)] = (kind, [int(v) for v in values if v != "none"])
        elif head == "output":
            k, *values = rest.split(" ")
            run.outputs[int(k)] = np.array([int(v) for v in values], np.int32).view(np.float32)
    return run
