"""Measuring images: stroke thickness, label evenness, the classifier's report."""

import keras
import numpy as np
import pytest

import vae_keras as vk
from vae_keras import quality


def bar_image(width, length=20, size=28, horizontal=False):
    """One image with a single straight bar of the given width (in pixels)."""
    image = np.zeros((size, size, 1), dtype=np.float32)
    top, left = 4, 10
    if horizontal:
        image[left:left + width, top:top + length] = 1.0
    else:
        image[top:top + length, left:left + width] = 1.0
    return image


def blur(images):
    """A 3x3 binomial blur: conserves ink, softens edges."""
    kernel = np.array([0.25, 0.5, 0.25])
    padded = np.pad(images[..., 0], ((0, 0), (1, 1), (1, 1)))
    rows = sum(k * padded[:, :, i:i + images.shape[2]] for i, k in enumerate(kernel))
    both = sum(k * rows[:, i:i + images.shape[1], :] for i, k in enumerate(kernel))
    return both[..., None].astype(np.float32)


def test_thicker_strokes_score_higher_and_long_bars_measure_their_width():
    images = np.stack([bar_image(w) for w in (1, 2, 3, 4)])
    thickness = quality.stroke_thickness(images)
    assert np.all(np.diff(thickness) > 0.5), thickness
    # w * L / (L + w) for a bar of width w and length L = 20, less a little at the corners
    expected = np.array([w * 20 / (20 + w) for w in (1, 2, 3, 4)])
    np.testing.assert_allclose(thickness, expected, rtol=0.06)


def test_thickness_ignores_orientation_blur_and_the_channel_axis():
    vertical, horizontal = bar_image(3), bar_image(3, horizontal=True)
    values = quality.stroke_thickness(np.stack([vertical, horizontal]))
    assert values[0] == pytest.approx(values[1])
    blurred = quality.stroke_thickness(blur(vertical[None]))[0]
    assert blurred == pytest.approx(values[0], rel=0.1)
    np.testing.assert_allclose(quality.stroke_thickness(vertical[None, ..., 0]), values[:1])


def test_blank_image_has_zero_thickness():
    assert quality.stroke_thickness(np.zeros((2, 8, 8, 1), np.float32)).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("images, match", [
    (np.zeros((28, 28), np.float32), "batch axis"),
    (np.zeros((2, 8, 8, 3), np.float32), "one channel"),
    (np.full((1, 8, 8), 255.0, np.float32), "divide by 255"),
    (np.zeros((1, 8, 8), np.uint8), "integer"),
    (np.full((1, 8, 8), np.nan, np.float32), "NaN"),
    (np.zeros((0, 8, 8), np.float32), "empty"),
])
def test_stroke_thickness_rejects_bad_images(images, match):
    with pytest.raises(ValueError, match=match):
        quality.stroke_thickness(images)


def test_normalized_entropy_is_one_when_even_and_zero_for_one_class():
    assert quality.normalized_entropy([5, 5, 5, 5]) == pytest.approx(1.0)
    assert quality.normalized_entropy([0, 7, 0]) == pytest.approx(0.0)
    assert 0.0 < quality.normalized_entropy([9, 1, 0, 0]) < 0.5
    for bad in ([3], [[1, 2]], [0, 0], [1, -1], [1, np.nan]):
        with pytest.raises(ValueError):
            quality.normalized_entropy(bad)


def test_summary_counts_sum_to_n_and_measure_confidence():
    probabilities = np.array([[0.95, 0.05, 0.0], [0.2, 0.7, 0.1], [0.0, 0.05, 0.95],
                              [0.99, 0.01, 0.0]])
    report = quality.summarize_predictions(probabilities, confidence_threshold=0.9)
    assert report["counts"].tolist() == [2, 1, 1] and report["counts"].sum() == 4
    assert report["labels"].tolist() == [0, 1, 2, 0]
    assert report["mean_confidence"] == pytest.approx((0.95 + 0.7 + 0.95 + 0.99) / 4)
    assert report["confident_fraction"] == pytest.approx(0.75)
    assert report["classes_present"] == 3
    assert report["label_entropy"] == pytest.approx(quality.normalized_entropy([2, 1, 1]))


def test_summary_rejects_logits_and_bad_thresholds():
    with pytest.raises(ValueError, match="softmax"):
        quality.summarize_predictions(np.array([[2.0, -1.0], [0.5, 3.0]]))
    with pytest.raises(ValueError, match="shape"):
        quality.summarize_predictions(np.ones(4) / 4)
    with pytest.raises(ValueError, match="confidence_threshold"):
        quality.summarize_predictions(np.full((2, 2), 0.5), confidence_threshold=1.5)


def test_scramble_keeps_the_tiles_and_moves_them():
    images = np.random.default_rng(0).random((5, 8, 12, 1)).astype(np.float32)
    scrambled = quality.scramble_digits(images, block_size=4, seed=0)
    assert scrambled.shape == images.shape
    def tiles(batch):
        return sorted(batch[0, r:r + 4, c:c + 4, 0].tobytes() for r in (0, 4) for c in (0, 4, 8))
    assert tiles(scrambled) == tiles(images)  # the same six tiles, in another order
    assert not np.array_equal(scrambled, images)
    np.testing.assert_array_equal(scrambled, quality.scramble_digits(images, 4, seed=0))
    with pytest.raises(ValueError, match="divide"):
        quality.scramble_digits(images, block_size=5)


def test_classifier_trains_and_reports_on_images():
    keras.utils.set_random_seed(0)
    # Two easy classes: vertical bars (0) and horizontal bars (1), 12x12 images.
    images = np.stack([bar_image(2, length=8, size=12, horizontal=bool(i % 2)) for i in range(64)])
    labels = np.arange(64) % 2
    classifier = quality.build_digit_classifier(image_shape=(12, 12, 1), num_classes=2,
                                                filters=(8,), hidden_units=16, learning_rate=1e-2)
    assert classifier.output_shape == (None, 2)
    assert classifier.get_layer("training_noise").stddev == pytest.approx(0.3)
    history = quality.fit_digit_classifier(classifier, images, labels, epochs=20, batch_size=16,
                                           outlier_fraction=0.25, seed=0)
    assert len(history.history["loss"]) == 20
    report = quality.recognition_report(classifier, images)
    assert report["counts"].sum() == len(images)
    assert report["labels"].tolist() == labels.tolist()
    assert report["classes_present"] == 2 and report["label_entropy"] == pytest.approx(1.0)
    assert 0.5 <= report["mean_confidence"] <= 1.0


def test_classifier_and_report_reject_bad_arguments():
    with pytest.raises(ValueError, match="image_shape"):
        quality.build_digit_classifier(image_shape=(28, 28))
    with pytest.raises(ValueError, match="num_classes"):
        quality.build_digit_classifier(num_classes=1)
    with pytest.raises(TypeError, match="num_classes"):
        quality.build_digit_classifier(num_classes=2.5)
    with pytest.raises(ValueError, match="input_noise"):
        quality.build_digit_classifier(input_noise=-0.1)
    classifier = quality.build_digit_classifier(image_shape=(8, 8, 1), num_classes=3, filters=(4,),
                                                hidden_units=4)
    images = np.zeros((2, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match="0..2"):
        quality.fit_digit_classifier(classifier, images, np.array([0, 3]))
    with pytest.raises(ValueError, match="one per image"):
        quality.fit_digit_classifier(classifier, images, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="outlier_fraction"):
        quality.fit_digit_classifier(classifier, images, np.array([0, 1]), outlier_fraction=-1)
    with pytest.raises(TypeError, match="keras.Model"):
        quality.fit_digit_classifier("judge", images, np.array([0, 1]))
    with pytest.raises(ValueError, match="classifier takes"):
        quality.recognition_report(classifier, np.zeros((2, 28, 28, 1), np.float32))
    with pytest.raises(ValueError, match="divide by 255"):
        quality.recognition_report(classifier, np.full((2, 8, 8, 1), 200.0, np.float32))
    with pytest.raises(TypeError, match="classifier"):
        quality.recognition_report("model.keras", images)


def test_nearest_finds_the_closest_row_and_its_distance():
    references = np.array([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]])
    queries = np.array([[0.1, 0.0], [3.0, 4.0], [9.0, 1.0], [2.0, 3.0]])
    index, distance = quality.nearest(queries, references, chunk_size=3)  # two blocks
    assert index.tolist() == [0, 1, 2, 1] and index.dtype == np.int64
    np.testing.assert_allclose(distance, [0.1, 0.0, np.sqrt(2), np.sqrt(2)], atol=1e-12)


def test_nearest_flattens_images_and_matches_brute_force():
    rng = np.random.default_rng(0)
    references = rng.random((50, 4, 4, 1)).astype(np.float32)
    queries = rng.random((7, 4, 4, 1)).astype(np.float32)
    index, distance = quality.nearest(queries, references)
    brute = np.linalg.norm(queries.reshape(7, 1, -1) - references.reshape(1, 50, -1), axis=2)
    assert index.tolist() == brute.argmin(axis=1).tolist()
    np.testing.assert_allclose(distance, brute.min(axis=1), rtol=1e-6)


@pytest.mark.parametrize("queries, references, kwargs, error, match", [
    (np.zeros((2, 3)), np.zeros((4, 2)), {}, ValueError, "values per row"),
    (np.zeros(3), np.zeros((4, 3)), {}, ValueError, "batch axis"),
    (np.zeros((0, 3)), np.zeros((4, 3)), {}, ValueError, "non-empty"),
    (np.full((1, 3), np.nan), np.zeros((4, 3)), {}, ValueError, "NaN"),
    (np.zeros((1, 3)), "images", {}, TypeError, "NumPy array"),
    (np.zeros((1, 3)), np.zeros((4, 3)), {"chunk_size": 0}, ValueError, "chunk_size"),
    (np.zeros((1, 3)), np.zeros((4, 3)), {"chunk_size": 2.5}, TypeError, "chunk_size"),
])
def test_nearest_rejects_bad_input(queries, references, kwargs, error, match):
    with pytest.raises(error, match=match):
        quality.nearest(queries, references, **kwargs)


def test_label_entropy_in_nats_from_labels_or_probabilities():
    assert quality.label_entropy(np.arange(10).repeat(3)) == pytest.approx(np.log(10))
    assert quality.label_entropy(np.full(7, 4)) == 0.0
    assert quality.label_entropy(np.array([0, 0, 1, 1]), num_classes=2) == pytest.approx(np.log(2))
    # Three classes with frequencies 1/2, 1/4, 1/4: 1.5 log 2 nats.
    assert quality.label_entropy(np.array([2, 2, 0, 1]), num_classes=3) == \
        pytest.approx(1.5 * np.log(2))
    probabilities = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    assert quality.label_entropy(probabilities, num_classes=3) == \
        pytest.approx(quality.label_entropy(np.array([0, 1, 0]), num_classes=3))


@pytest.mark.parametrize("values, kwargs, error, match", [
    (np.array([0, 10]), {}, ValueError, "0..9"),
    (np.array([-1, 2]), {}, ValueError, "0..9"),
    (np.array([], dtype=int), {}, ValueError, "no labels"),
    (np.array([0.0, 1.0]), {}, TypeError, "integers"),
    (np.full((2, 3), 1 / 3), {}, ValueError, "num_classes=10"),
    (np.zeros((2, 2, 2), dtype=int), {}, ValueError, "shape"),
    (np.array([0, 1]), {"num_classes": 1}, ValueError, "num_classes"),
])
def test_label_entropy_rejects_bad_input(values, kwargs, error, match):
    with pytest.raises(error, match=match):
        quality.label_entropy(values, **kwargs)


TINY_RECIPE = dict(vk.quality.JUDGE_RECIPE, train_images=300, epochs=1, hidden_units=16,
                   filters=[4, 8])


def test_the_judge_is_trained_once_then_loaded_from_the_cache(fake_data_dir, tmp_path, monkeypatch):
    import subprocess

    first = vk.quality.judge(fake_data_dir, recipe=TINY_RECIPE, cache_dir=tmp_path / "judges")
    assert not first.from_cache
    assert 0 <= first.test_accuracy <= 1 and first.recipe == TINY_RECIPE
    assert "300 MNIST training digits and 75 scrambled ones" in first.describe()
    images = np.random.default_rng(0).random((5, 28, 28, 1)).astype("float32")

    def no_training(*args, **kwargs):
        raise AssertionError("a cached judge must not be trained again")

    monkeypatch.setattr(subprocess, "run", no_training)
    second = vk.quality.judge(fake_data_dir, recipe=TINY_RECIPE, cache_dir=tmp_path / "judges")
    assert second.from_cache and second.test_accuracy == first.test_accuracy
    np.testing.assert_allclose(second.report(images)["confidences"],
                               first.report(images)["confidences"], rtol=1e-5)


def test_a_new_recipe_or_new_data_gets_a_new_judge(fake_data_dir):
    from conftest import write_idx

    key = vk.quality._judge_key(TINY_RECIPE, fake_data_dir)
    assert vk.quality._judge_key(dict(TINY_RECIPE, epochs=2), fake_data_dir) != key
    folder = fake_data_dir / "mnist"
    labels = vk.data.read_idx(folder / "train-labels-idx1-ubyte.gz")
    write_idx(folder / "train-labels-idx1-ubyte.gz", (labels + 1) % 10)
    assert vk.quality._judge_key(TINY_RECIPE, fake_data_dir) != key


def test_training_the_judge_leaves_the_callers_random_state_alone(fake_data_dir, tmp_path):
    import keras

    keras.utils.set_random_seed(3)
    expected = np.random.random()
    keras.utils.set_random_seed(3)
    vk.quality.judge(fake_data_dir, recipe=TINY_RECIPE, cache_dir=tmp_path / "judges")
    assert np.random.random() == expected


def test_a_recipe_with_a_missing_key_is_refused(tmp_path):
    with pytest.raises(ValueError, match="lacks"):
        vk.quality.judge(recipe={"epochs": 1}, cache_dir=tmp_path)


def test_laplacian_variance_of_a_point_and_of_a_constant_image():
    point = np.zeros((1, 5, 5, 1), np.float32)
    point[0, 2, 2, 0] = 1.0
    # The Laplacian on the 3 x 3 interior: -4 at the point, 1 at its four neighbours, 0 at the
    # corners; mean 0, variance (16 + 4) / 9.
    assert quality.laplacian_variance(point) == pytest.approx(20 / 9)
    assert quality.laplacian_variance(np.full((2, 6, 6), 0.7, np.float32)) == 0.0


def test_blurring_lowers_the_laplacian_variance():
    images = np.stack([bar_image(width) for width in (1, 2, 3, 4)])
    blurred = blur(images)
    assert quality.laplacian_variance(blurred) < quality.laplacian_variance(images) / 2


@pytest.mark.parametrize("images, match", [(np.zeros((2, 2, 2, 1), np.float32), "at least 3 x 3"),
                                           (np.zeros((2, 5, 5, 3), np.float32), "one channel"),
                                           (np.zeros((2, 5, 5, 1), np.uint8), "integer")])
def test_laplacian_variance_rejects_bad_images(images, match):
    with pytest.raises(ValueError, match=match):
        quality.laplacian_variance(images)


def test_the_judge_score_runs_from_one_to_the_number_of_classes():
    confident_and_even = np.eye(10)[np.arange(100) % 10]
    assert quality.judge_score(confident_and_even) == pytest.approx(10.0, rel=1e-6)
    assert quality.judge_score(np.eye(10)[np.zeros(100, int)]) == pytest.approx(1.0)  # one digit
    assert quality.judge_score(np.full((100, 10), 0.1)) == pytest.approx(1.0)  # all unsure
    # Confident samples of half the digits, evenly: exp(log 5) = 5.
    assert quality.judge_score(np.eye(10)[np.arange(100) % 5]) == pytest.approx(5.0, rel=1e-6)


@pytest.mark.parametrize("probabilities, match", [(np.zeros(10), "shape"),
                                                  (np.full((4, 10), 0.5), "sum to 1"),
                                                  (np.full((4, 10), np.nan), "finite")])
def test_the_judge_score_rejects_what_is_not_probabilities(probabilities, match):
    with pytest.raises(ValueError, match=match):
        quality.judge_score(probabilities)


def test_a_judge_scores_images_with_its_own_verdicts():
    inputs = keras.Input((4, 4, 1))
    # A "classifier" that reads class 0 on dark images and class 1 on bright ones.
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(2, activation="softmax", kernel_initializer=keras.initializers.Constant(
        [[-50.0, 50.0]]), bias_initializer=keras.initializers.Constant([25.0, -25.0]))(mean)
    judge = quality.Judge(keras.Model(inputs, outputs), {"recipe": {}, "test_accuracy": 1.0,
                                                         "reference": {}, "training_seconds": 0.0},
                          from_cache=False)
    half_and_half = np.concatenate([np.zeros((8, 4, 4, 1)), np.ones((8, 4, 4, 1))]).astype(np.float32)
    assert judge.score(half_and_half) == pytest.approx(2.0, rel=1e-4)
    assert judge.score(np.zeros((8, 4, 4, 1), np.float32)) == pytest.approx(1.0, rel=1e-4)
