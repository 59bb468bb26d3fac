// Stand-ins for the parts of the Gradle Kotlin DSL and the Android Gradle Plugin's DSL the bundle's
// build.gradle.kts.snippet uses: `android { androidResources { noCompress } }`
// (com.android.build.api.dsl.AndroidResources, AGP 7.0+: noCompress is a MutableCollection<String>,
// https://developer.android.com/reference/tools/gradle-api/com/android/build/api/dsl/AndroidResources)
// and `dependencies { implementation(notation) }`. Gradle and AGP cannot be downloaded here (no Maven).
package gradlecheck

class AndroidResources {
    val noCompress: MutableCollection<String> = mutableListOf()
}

class AndroidExtension {
    val androidResources = AndroidResources()
    fun androidResources(action: AndroidResources.() -> Unit) { androidResources.action() }
}

class DependencyHandler {
    val implementations = mutableListOf<Any>()
    fun implementation(dependencyNotation: Any) { implementations.add(dependencyNotation) }
}

class BuildScript {
    val android = AndroidExtension()
    val dependencies = DependencyHandler()
    fun android(action: AndroidExtension.() -> Unit) { android.action() }
    fun dependencies(action: DependencyHandler.() -> Unit) { dependencies.action() }
}
