// Stand-ins for LiteRT's Kotlin API, com.google.ai.edge.litert 2.1.0, with the signatures of its sources
// (github.com/google-ai-edge/LiteRT, tag v2.1.0, litert/kotlin/src/main/kotlin/com/google/ai/edge/litert/:
// Common.kt, Environment.kt, LiteRtException.kt, Model.kt, TensorBuffer.kt; guide:
// https://ai.google.dev/edge/litert/next/android_kotlin). See ../../../../../README.md.
//
// In memory: a TensorBuffer keeps what was written (and how); CompiledModel.create checks the asset is a
// .tflite; run() hands the buffers to `Fake.onRun`, which the test's driver sets to fill the outputs with
// what LiteRT computed in Python. Only `Fake` is not part of the real API.
@file:Suppress("UNUSED_PARAMETER")
package com.google.ai.edge.litert

import android.content.res.AssetManager

enum class Accelerator(val value: Int) { NONE(0), CPU(1), GPU(2), NPU(3) }

class LiteRtException(message: String) : Exception(message)

class Environment private constructor()

class TensorBuffer internal constructor(val slot: Int) : AutoCloseable {
    /** The last values written or given (FloatArray, ByteArray or IntArray) and the write used (test only). */
    var data: Any? = null
    var written: String = ""
    var closed = false

    fun writeFloat(data: FloatArray) { this.data = data.copyOf(); written = "writeFloat" }
    fun writeInt8(data: ByteArray) { this.data = data.copyOf(); written = "writeInt8" }
    fun writeInt(data: IntArray) { this.data = data.copyOf(); written = "writeInt" }
    fun readFloat(): FloatArray = data as? FloatArray ?: throw LiteRtException("buffer $slot holds no floats")
    fun readInt8(): ByteArray = data as? ByteArray ?: throw LiteRtException("buffer $slot holds no int8 bytes")
    fun readInt(): IntArray = data as? IntArray ?: throw LiteRtException("buffer $slot holds no ints")
    override fun close() { closed = true }
}

/** What the stand-in CompiledModel does and saw (test only): buffer counts, the run hook, the options. */
object Fake {
    var inputCount = 1
    var outputCount = 1
    var onRun: ((List<TensorBuffer>, List<TensorBuffer>) -> Unit)? = null
    var options: CompiledModel.Options? = null
    var asset: String? = null
    var runs = 0
    var closed = false
}

class CompiledModel private constructor() : AutoCloseable {
    data class CpuOptions @JvmOverloads constructor(
        val numThreads: Int? = null,
        val xnnPackFlags: Int? = null,
        val xnnPackWeightCachePath: String? = null
    )

    class Options constructor(internal val accelerators: Set<Accelerator>) {
        constructor(vararg accelerators: Accelerator) : this(setOf(*accelerators))

        var cpuOptions: CpuOptions? = null

        companion object {
            @JvmStatic val CPU = Options(Accelerator.CPU)
        }
    }

    @JvmOverloads
    fun createInputBuffers(signatureIndex: Int = 0): List<TensorBuffer> = List(Fake.inputCount) { TensorBuffer(it) }

    @JvmOverloads
    fun createOutputBuffers(signatureIndex: Int = 0): List<TensorBuffer> = List(Fake.outputCount) { TensorBuffer(it) }

    @JvmOverloads
    fun run(inputs: List<TensorBuffer>, outputs: List<TensorBuffer>, signatureIndex: Int = 0) {
        Fake.runs += 1
        (Fake.onRun ?: throw LiteRtException("no model behind this stand-in"))(inputs, outputs)
    }

    override fun close() { Fake.closed = true }

    companion object {
        @JvmOverloads
        @JvmStatic
        fun create(
            assetManager: AssetManager,
            assetName: String,
            options: Options = Options.CPU,
            optionalEnv: Environment? = null
        ): CompiledModel {
            val head = assetManager.open(assetName).use { it.readBytes().copyOfRange(4, 8) }
            if (String(head, Charsets.US_ASCII) != "TFL3") throw LiteRtException("$assetName is not a .tflite")
            Fake.options = options
            Fake.asset = assetName
            return CompiledModel()
        }
    }
}
