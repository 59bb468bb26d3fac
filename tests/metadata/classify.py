"""Run by the MediaPipe venv's Python: MediaPipe Tasks' ImageClassifier on a model, as an Android app would.

Usage: python classify.py MODEL IMAGES.npy

The classifier reads the model's metadata itself: the NormalizationOptions it needs for a float
input, the ImageProperties' color space and the labels file (TENSOR_AXIS_LABELS) naming the
categories. IMAGES.npy holds uint8 RGB images (N, H, W, 3) at the model's input size. Prints one
JSON line: for each image, every category as [index, name, score]. MediaPipe is imported inside
`main`: pytest's --doctest-modules imports this file in edgex's own environment, which has no MediaPipe.
"""
import json
import sys


def main(model: str, images: str) -> list:
    import mediapipe as mp
    import numpy as np
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model))
    out = []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for pixels in np.load(images):
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB,
                                                  data=np.ascontiguousarray(pixels)))
            out.append([[c.index, c.category_name, c.score] for c in result.classifications[0].categories])
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
