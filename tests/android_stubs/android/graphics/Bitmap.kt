// Stand-in for android.graphics.Bitmap (https://developer.android.com/reference/android/graphics/Bitmap):
// getWidth()/getHeight() (Kotlin: width, height), getPixels(int[], int, int, int, int, int, int),
// createBitmap(int[], int, int, Bitmap.Config) and createScaledBitmap(Bitmap, int, int, boolean), which
// returns the source when the size is unchanged (as documented) and otherwise scales by nearest neighbour
// (a stand-in: Android's filter=true is bilinear). Colors are packed ARGB ints.
@file:Suppress("UNUSED_PARAMETER")
package android.graphics

class Bitmap private constructor(private val w: Int, private val h: Int, private val colors: IntArray) {
    enum class Config { ALPHA_8, RGB_565, ARGB_4444, ARGB_8888 }

    // getWidth() and getHeight(), as Kotlin code sees them: properties.
    val width: Int get() = w
    val height: Int get() = h

    fun getPixels(pixels: IntArray, offset: Int, stride: Int, x: Int, y: Int, width: Int, height: Int) {
        require(x >= 0 && y >= 0 && x + width <= w && y + height <= h) { "outside the bitmap" }
        for (row in 0 until height) {
            for (col in 0 until width) {
                pixels[offset + row * stride + col] = colors[(y + row) * w + x + col]
            }
        }
    }

    companion object {
        @JvmStatic
        fun createBitmap(colors: IntArray, width: Int, height: Int, config: Config): Bitmap {
            require(colors.size >= width * height && width > 0 && height > 0) { "bad size" }
            return Bitmap(width, height, colors.copyOf(width * height))
        }

        @JvmStatic
        fun createScaledBitmap(src: Bitmap, dstWidth: Int, dstHeight: Int, filter: Boolean): Bitmap {
            require(dstWidth > 0 && dstHeight > 0) { "width and height must be > 0" }
            if (dstWidth == src.w && dstHeight == src.h) return src
            val out = IntArray(dstWidth * dstHeight) { i ->
                src.colors[(i / dstWidth) * src.h / dstHeight * src.w + (i % dstWidth) * src.w / dstWidth]
            }
            return Bitmap(dstWidth, dstHeight, out)
        }
    }
}
