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
