from seqgen.data.synthetic import SPANISH_NOUNS, scene_key, scenes
from seqgen.demo import well_formed


def test_scenes_are_deterministic_by_seed():
    a = [s.english() for s in scenes(50, seed=4)]
    assert a == [s.english() for s in scenes(50, seed=4)]
    assert a != [s.english() for s in scenes(50, seed=5)]


def test_descriptions_follow_the_grammar_and_spanish_agrees_in_gender():
    for scene in scenes(300, seed=1):
        assert well_formed(scene.english()), scene.english()
        spanish = scene.spanish()
        for shape in scene.shapes:
            noun, feminine = SPANISH_NOUNS[shape.kind]
            assert noun in spanish
        if any(s.kind == "star" and s.colour == "red" for s in scene.shapes):
            assert "estrella roja" in spanish


def test_spanish_puts_adjectives_after_the_noun():
    scene = next(s for s in scenes(500, seed=2)
                 if len(s.shapes) == 1 and s.shapes[0].size == "small"
                 and s.shapes[0].kind == "circle")
    colour = scene.shapes[0].colour
    assert scene.english() == f"a small {colour} circle"
    assert scene.spanish().startswith("un círculo ") and scene.spanish().endswith(" pequeño")


def test_caption_is_a_function_of_the_picture():
    seen: dict[bytes, str] = {}
    for scene in scenes(400, seed=3):
        pixels = scene.render(48).tobytes()
        assert seen.setdefault(pixels, scene.english()) == scene.english()
    assert len({scene_key(s) for s in scenes(400, seed=3)}) > 300


def test_rendered_image_shows_the_shapes():
    scene = scenes(1, seed=0)[0]
    image = scene.render(64)
    assert image.size == (64, 64) and image.mode == "RGB"
    assert len(image.getcolors(maxcolors=4096)) > 1


def test_well_formed_rejects_broken_lines():
    assert well_formed("a small red circle above a blue square")
    assert not well_formed("a small red circle above")
    assert not well_formed("a red red circle")
