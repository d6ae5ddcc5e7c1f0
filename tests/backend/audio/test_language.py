"""The language of an answer, told from its words: typical chat answers in the six languages, answers
with Markdown and code, and texts too short or too mixed to tell."""

from __future__ import annotations

import pytest

from backend.audio.language import LANGUAGES, guess_language, prose

ANSWERS: dict[str, list[str]] = {
    "it": [
        "Certo! Ecco una ricetta semplice per la pasta al pomodoro: fai soffriggere l'aglio nell'olio, aggiungi "
        "i pomodori e lascia cuocere per dieci minuti.",
        "La capitale d'Italia è Roma. È una città con una storia molto lunga e ci sono tanti musei da visitare.",
        "Non lo so con certezza, ma posso aiutarti a cercare le informazioni che ti servono.",
        "Domani a Milano il tempo sarà nuvoloso, con qualche pioggia nel pomeriggio.",
        "Che tempo fa oggi a Roma?",
    ],
    "en": [
        "Sure! Here is a simple recipe for tomato pasta: fry the garlic in the oil, add the tomatoes and let it "
        "cook for ten minutes.",
        "The capital of Italy is Rome. It is a city with a very long history, and there are many museums to see.",
        "I don't know for sure, but I can help you look for the information you need.",
    ],
    "es": [
        "¡Claro! Aquí tienes una receta sencilla de pasta con tomate: sofríe el ajo en el aceite, añade los "
        "tomates y deja que se cocine durante diez minutos.",
        "La capital de Italia es Roma. Es una ciudad con una historia muy larga y hay muchos museos para visitar.",
        "No lo sé con seguridad, pero puedo ayudarte a buscar la información que necesitas.",
    ],
    "fr": [
        "Bien sûr ! Voici une recette simple de pâtes à la tomate : faites revenir l'ail dans l'huile, ajoutez "
        "les tomates et laissez cuire dix minutes.",
        "La capitale de l'Italie est Rome. C'est une ville avec une très longue histoire et il y a beaucoup de "
        "musées à visiter.",
        "Je ne sais pas avec certitude, mais je peux vous aider à chercher les informations dont vous avez besoin.",
    ],
    "de": [
        "Natürlich! Hier ist ein einfaches Rezept für Tomatennudeln: Brate den Knoblauch im Öl an, gib die "
        "Tomaten dazu und lass es zehn Minuten kochen.",
        "Die Hauptstadt von Italien ist Rom. Es ist eine Stadt mit einer sehr langen Geschichte und es gibt viele "
        "Museen.",
        "Ich weiß es nicht genau, aber ich kann dir helfen, die Informationen zu finden, die du brauchst.",
    ],
    "pt": [
        "Claro! Aqui está uma receita simples de massa com tomate: refogue o alho no azeite, junte os tomates e "
        "deixe cozinhar durante dez minutos.",
        "A capital da Itália é Roma. É uma cidade com uma história muito longa e há muitos museus para visitar.",
        "Não sei com certeza, mas posso ajudar você a procurar as informações de que precisa.",
    ],
}


@pytest.mark.parametrize(("language", "text"), [(lang, text) for lang, texts in ANSWERS.items() for text in texts],
                         ids=[f"{lang}-{i}" for lang, texts in ANSWERS.items() for i in range(len(texts))])
def test_typical_answers(language: str, text: str) -> None:
    assert guess_language(text) == language


def test_it_covers_the_six_languages() -> None:
    assert set(LANGUAGES) >= {"it", "en", "es", "fr", "de", "pt"}


MARKDOWN_ITALIAN = """## Come installare il pacchetto

Per installare la libreria, apri il terminale e scrivi:

```bash
pip install requests
# then check that the import works and the version is the one you need
python -c "import requests; print(requests.__version__)"
```

Poi puoi usare `requests.get("https://example.com/api/v1/items?page=1&sort=name")` nel tuo codice.
Trovi tutti i dettagli nella [documentazione ufficiale](https://requests.readthedocs.io/en/latest/user/quickstart/).

| Comando | Che cosa fa |
|---|---|
| `pip list` | mostra i pacchetti installati |
| `pip show requests` | mostra la versione |

- **Nota:** se usi un ambiente virtuale, attivalo prima.
"""

CODE_WITH_AN_ENGLISH_WORD = """Ecco la funzione che hai chiesto:

```python
def average(values: list[float]) -> float:
    \"\"\"Return the mean of the values, or zero when there are none of them.\"\"\"
    if not values:
        return 0.0
    return sum(values) / len(values)
```

La funzione restituisce la media dei valori, oppure zero se la lista è vuota.
"""


def test_markdown_and_code_are_left_out() -> None:
    assert guess_language(MARKDOWN_ITALIAN) == "it"
    assert guess_language(CODE_WITH_AN_ENGLISH_WORD) == "it"
    left = prose(MARKDOWN_ITALIAN)
    assert "pip install" not in left and "requests.get" not in left and "readthedocs" not in left
    assert "documentazione ufficiale" in left and "terminale" in left


def test_an_unclosed_code_block_is_left_out_to_the_end() -> None:
    text = "Prova questo codice, che dovrebbe funzionare:\n```js\nconst answer = await fetch(url); // the data is here"
    assert "fetch" not in prose(text)
    assert guess_language(text) == "it"


def test_code_alone_says_nothing() -> None:
    assert guess_language("```python\nprint('hello world and the rest of it')\n```") is None
    assert guess_language("`ls -la` `cd /tmp` `rm -rf build`") is None


@pytest.mark.parametrize("text", [
    "", "   ", "OK", "Ciao!", "Rome", "Hello there", "Sì, certo.", "42", "3.14 * 2 = 6.28", "👍",
    "Roma, Milano, Napoli", "https://example.com/il/la/che/per/con/non", "**Grazie!**",
])
def test_too_little_to_tell(text: str) -> None:
    assert guess_language(text) is None


def test_a_mix_with_no_clear_winner_says_nothing() -> None:
    assert guess_language("The cat is on the table. Il gatto è sul tavolo con la palla.") is None


def test_a_foreign_name_does_not_change_the_language() -> None:
    assert guess_language("Herr Müller ist heute nicht im Büro.") == "de"
    assert guess_language("Ho parlato con Herr Müller ieri sera, ed era molto gentile.") == "it"
    assert guess_language("We had dinner at the Trattoria da Mario near the station.") == "en"


def test_the_guess_is_deterministic_and_case_blind() -> None:
    text = ANSWERS["fr"][1]
    assert {guess_language(text) for _ in range(5)} == {"fr"}
    assert guess_language(text.upper()) == guess_language(text.lower()) == "fr"


def test_typographic_apostrophes() -> None:
    assert guess_language("L’acqua dell’Adriatico è più calda d’estate.") == "it"
    assert guess_language("C’est l’heure d’aller à l’école avec les enfants.") == "fr"


def test_a_very_long_answer_is_quick() -> None:
    import time

    text = " ".join(ANSWERS["es"]) * 2000  # about 600 kB
    started = time.perf_counter()
    assert guess_language(text) == "es"
    assert time.perf_counter() - started < 0.5
