// Stand-in for android.content.res.AssetManager
// (https://developer.android.com/reference/android/content/res/AssetManager#open(java.lang.String)):
// open(fileName) reads the file of that name in a folder (the bundle plays the app's assets/).
package android.content.res

import java.io.File
import java.io.FileInputStream
import java.io.FileNotFoundException
import java.io.InputStream

class AssetManager(private val root: String) {
    /** The asset [fileName]; java.io.FileNotFoundException when there is none, as on Android. */
    fun open(fileName: String): InputStream {
        val file = File(root, fileName)
        if (!file.isFile) throw FileNotFoundException(fileName)
        return FileInputStream(file)
    }
}
