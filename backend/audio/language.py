"""Which language an answer is written in, so that it can be read aloud by a voice that speaks it.

A small deterministic guess, not a classifier: it counts the short function words every sentence is
made of ("the", "della", "que", "und") and a few letters and endings one language has and the others
lack ("ñ", "ß", "-zione", "-ção"). A word several languages share counts for each of them in part. It
says nothing (None) rather than guess from too little: fewer than three words, or no clear winner.
Code and links in a Markdown answer are left out first: they are not read aloud and are mostly English.
"""

from __future__ import annotations

import re
from collections import defaultdict

__all__ = ["LANGUAGES", "guess_language"]

_FUNCTION_WORDS: dict[str, str] = {
    "en": """the a an and or but of to in on at by for with from as is are was were be been being it its this
        that these those there here what which who whom whose when where why how not no do does did done have has
        had will would can could should shall may might must i you he she we they me him her us them my your his
        our their if then than so also just about into over after before because very all some any more most
        s t ll re ve d m don doesn didn isn aren wasn won""",
    "it": """il lo la i gli le un uno una l dell all nell sull dall di del dello della dei degli delle a al allo
        alla ai agli alle da dal dallo dalla dai dagli dalle in nel nello nella nei negli nelle su sul sullo sulla
        sui sugli sulle con per tra fra e ed o oppure ma però anche che chi cui non è sono era erano sei siamo
        siete ha hanno ho hai abbiamo essere avere può puoi posso questo questa questi queste quello quella
        quelli quelle ci si ne mi ti vi più molto molta molti molte perché quando dove come cosa se io tu lui
        lei noi voi loro mio mia tuo tua suo sua nostro vostro già ancora sempre poi così ecco grazie ciao bene
        oggi domani qui solo tutto tutti ogni c""",
    "es": """el la los las un una unos unas lo de del al a en y e o u que por para con sin sobre entre desde hasta
        no sí se le les me te nos su sus mi mis tu tus es son era eran fue está están estar ser hay ha han he
        hemos tiene tienes puede puedes como cómo qué cuál cuando cuándo donde dónde porque pero más muy también
        este esta estos estas ese esa eso esto yo tú usted ustedes él ella ellos ellas nosotros ya hoy mañana
        aquí gracias hola bien todo todos cada mucho muchos algo""",
    "fr": """le la les l un une des du de d au aux à et ou où mais donc que qu qui quoi ne n pas plus pour par
        avec dans sur sous chez sans entre ce cet cette ces c il elle ils elles on nous vous je j tu me m te se s
        son sa ses leur leurs mon ma mes ton ta tes votre vos notre nos est sont était être avoir a ai as avez
        avons ont fait faire peut peux y en très bien aussi comme tout tous toute toutes si oui non merci bonjour
        ici alors quand encore toujours été aujourd hui""",
    "de": """der die das den dem des ein eine einen einem einer eines und oder aber ist sind war waren nicht kein
        keine keinen mit von zu zum zur für auf an in im am aus bei nach über unter vor wie was wer wo wann warum
        ich du er sie es wir ihr mein meine dein deine sein seine ihre unser ja nein auch noch schon sehr nur so
        dass wenn weil kann können muss müssen haben hat habe hast werden wird wurde heute morgen hier danke
        hallo gut alle sich man dann doch mal gibt um durch diese dieser dieses""",
    "pt": """o a os as um uma uns umas de do da dos das no na nos nas ao à aos às em num numa e ou mas que não
        para por pelo pela pelos pelas com sem sobre entre como mais muito muita muitos também é são era foi
        está estão estar ser ter tem têm há pode podem você vocês eu ele ela nós eles elas me te se lhe meu
        minha seu sua seus suas este esta isso isto esse essa aquele já hoje amanhã aqui obrigado obrigada olá
        bem tudo todos cada quando onde porque mesmo""",
}
LANGUAGES = tuple(_FUNCTION_WORDS)

_LETTERS: dict[str, str] = {  # letters and endings one or two of the languages use and the others do not
    "en": "w th ight wh ough",
    "it": "è ì ò ù zione zioni gli cch zz",
    "es": "ñ ¿ ¡ ción ciones á í ó ú",
    "fr": "è ê â î û ë ï ç œ eux aux",
    "de": "ä ö ü ß sch cht tz w",
    "pt": "ã õ ç ê ô á í ó ú ção ções lh nh",
}


def _weights(table: dict[str, str]) -> dict[str, dict[str, float]]:
    """Each word (or letter) with its weight per language: 1 shared among the languages that use it."""
    users: dict[str, list[str]] = defaultdict(list)
    for language, words in table.items():
        for word in dict.fromkeys(words.split()):
            users[word].append(language)
    return {word: {language: 1 / len(langs) for language in langs} for word, langs in users.items()}


_WORD_WEIGHTS = _weights(_FUNCTION_WORDS)
_LETTER_WEIGHTS = _weights(_LETTERS)
_LETTER_SHARE = 0.3
"""A letter or ending counts for less than a function word: one borrowed name ("Müller") must not
outweigh the sentence around it."""

_CODE_BLOCK = re.compile(r"^[ \t]*(```|~~~).*?(^[ \t]*\1[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK_TARGET = re.compile(r"\]\([^)\s]*\)")
_URL = re.compile(r"\b(?:https?://|www\.)\S+|\S+@\S+\.\w+")
_TAG = re.compile(r"</?[a-zA-Z][^>\n]*>")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_MIN_WORDS = 3
_MIN_SCORE = 1.5
_MARGIN = 1.5
"""The winner's score must be this many times the runner-up's."""
_MAX_CHARS = 20_000


def prose(text: str) -> str:
    """The text without what is not read as words: fenced code, inline code, link targets, URLs, tags."""
    text = _CODE_BLOCK.sub(" ", text[:_MAX_CHARS])
    for pattern in (_INLINE_CODE, _LINK_TARGET, _URL, _TAG):
        text = pattern.sub(" ", text)
    return text


def _scores(words: list[str]) -> dict[str, float]:
    scores: dict[str, float] = defaultdict(float)
    for word in words:
        for language, weight in _WORD_WEIGHTS.get(word, {}).items():
            scores[language] += weight
        for cue, shares in _LETTER_WEIGHTS.items():
            if cue in word:
                for language, weight in shares.items():
                    scores[language] += weight * _LETTER_SHARE
    return scores


def guess_language(text: str) -> str | None:
    """The ISO 639-1 code of the language `text` is written in (one of `LANGUAGES`), or None when
    there are too few words to tell or no language clearly leads."""
    words = _WORD.findall(prose(text).replace("’", "'").lower())
    if len(words) < _MIN_WORDS:
        return None
    ranked = sorted(_scores(words).items(), key=lambda item: (-item[1], item[0]))
    if not ranked:
        return None
    best, score = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    if score < _MIN_SCORE or score < runner_up * _MARGIN:
        return None
    return best
