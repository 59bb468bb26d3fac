// Stand-in for android.content.Context (https://developer.android.com/reference/android/content/Context):
// only getAssets(), which Kotlin code reads as `context.assets` (a Kotlin property here, as Kotlin sees
// the Java getter). See ../../README.md.
package android.content

import android.content.res.AssetManager

open class Context(private val assetManager: AssetManager) {
    open val assets: AssetManager get() = assetManager
}
