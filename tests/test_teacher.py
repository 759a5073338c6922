import numpy as np

from transforms.training.teacher import perturbed_copies

TEXTS = ["@user you are the worst referee i have ever seen in my life", "ok", "three word tweet"]


def test_perturbed_copies_are_seeded_word_subsequences():
    copies = perturbed_copies(TEXTS, copies=3, seed=5)
    assert len(copies) == 9
    assert list(copies) == list(perturbed_copies(TEXTS, copies=3, seed=5))
    assert list(copies) != list(perturbed_copies(TEXTS, copies=3, seed=6))
    for i, copy in enumerate(copies):
        source = TEXTS[i // 3].split()
        words = copy.split()
        assert words, "a copy is never empty"
        position = 0  # the copy's words appear in the source, in order
        for word in words:
            position = source.index(word, position) + 1


def test_copies_of_a_long_text_differ_from_it():
    long = " ".join(f"word{i}" for i in range(30))
    copies = perturbed_copies([long], copies=20, seed=0)
    assert sum(c == long for c in copies) <= 1  # a copy keeps every word with probability ~0.005
    assert len({*copies}) > 15


def test_word_encodings_are_each_word_alone_whatever_the_batch():
    """A word's encoding does not depend on the words batched (and padded) beside it, nor on their order."""
    from transforms.training.teacher import Teacher, TeacherSettings

    teacher = Teacher(TeacherSettings(threads=1), seed=0)
    words = ["idiot", "table", "unbelievably", "@user", "0", "🙄"]
    together = teacher.word_encodings(words)
    assert together.shape == (6, 384) and together.dtype == np.float32
    alone = np.stack([teacher.word_encodings([w])[0] for w in words])
    assert np.allclose(together, alone, atol=1e-5)
    assert np.allclose(teacher.word_encodings(words[::-1], batch_size=2)[::-1], together, atol=1e-5)
    # MiniLM places words by meaning: an insult nearer to another insult than to furniture.
    idiot, moron, chair = teacher.word_encodings(["idiot", "moron", "chair"])
    assert _cosine(idiot, moron) > _cosine(idiot, chair)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
