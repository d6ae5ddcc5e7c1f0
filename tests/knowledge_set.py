"""A labelled retrieval set for collections: about 300 everyday documents (half English, half
Italian) with planted facts, and questions about those facts asked in other words.

Why: recall is the measure of search that matters to a person asking their documents, and it
can only be measured on questions whose answer is known. The set is made by code (seeded, no
network) so a test and a benchmark can rebuild it anywhere.

Ten kinds of document (appliance manuals, recipes, travel notes, rental contracts, medicine
leaflets, school notes, club rules, vehicle care, pet care, garden care), fifteen subjects of
each kind per language. Every document of a kind states the same three kinds of fact (a
warranty, a dose, a closing date...) with its own values, so the other fourteen are close
distractors. One or two of a document's facts get a question:

* *named*: it carries the document's rare name (a model, a brand, a person, a street), so that
  words help, with the rest said in other words;
* *described*: it names neither the subject nor the name, only a paraphrase of what the subject
  is ("the machine that washes the dishes" for a dishwasher), so that word search alone mostly
  cannot find it.

A question is answered when a returned passage of its document contains its `answer`, a short
substring of the planted fact that occurs once in that document.

Most files are Markdown; some are plain text, HTML, CSV, Word (`tests/knowledgefiles.py`) and PDF
(`tests/documentfiles.py`), with the page of each PDF fact recorded.
"""

from __future__ import annotations

import html
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.documentfiles import pdf_bytes
from tests.knowledgefiles import docx_bytes

__all__ = ["SEED", "LabelledSet", "Question", "SetDocument", "answered", "build", "vocabulary", "write_set"]

SEED = 20260612
Lang = str  # "en" | "it"
Slots = dict[str, str]

# names ---------------------------------------------------------------------------------------------

_ONSETS = ["b", "br", "c", "cr", "d", "dr", "f", "g", "gr", "l", "m", "n", "p", "pr", "r", "s", "st", "t", "tr", "v",
           "z", "qu", "sc", "gl"]
_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o"]
_CODAS = ["", "", "", "n", "r", "l", "x", "s", "nt", "rd"]

FIRST_EN = ["Alice", "Brian", "Chloe", "Derek", "Emma", "Frank", "Hazel", "Ian", "Julia", "Keith", "Lydia", "Martin",
            "Nora", "Oliver", "Pamela", "Quentin", "Rosie", "Simon", "Tessa", "Victor", "Wendy", "Gareth"]
"""Women's and men's names in turn (the even ones are women's)."""
FIRST_IT = ["Agnese", "Bruno", "Carla", "Dario", "Elena", "Franco", "Giulia", "Ivo", "Lucia", "Marco", "Nadia",
            "Orazio", "Paola", "Renzo", "Sara", "Tullio", "Ugo", "Vera", "Walter", "Zita", "Ornella", "Piero"]
FEMALE_IT = ["Agnese", "Carla", "Elena", "Giulia", "Lucia", "Nadia", "Paola", "Sara", "Vera", "Zita", "Ornella"]
MONTHS = {"en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                 "November", "December"],
          "it": ["gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre",
                 "ottobre", "novembre", "dicembre"]}
WEEKDAYS = {"en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
            "it": ["lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica"]}


class Names:
    """Made-up rare words (brands, places, surnames), never the same twice in one set."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.taken: set[str] = set()

    def word(self, syllables: tuple[int, ...] = (2, 2, 3)) -> str:
        while True:
            n = self.rng.choice(syllables)
            w = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) for _ in range(n))
            w = (w + self.rng.choice(_CODAS)).capitalize()
            if len(w) >= 4 and w.lower() not in self.taken:
                self.taken.add(w.lower())
                return w


# what every kind of document is made of -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Subject:
    en: str
    """The subject in the text (no article): "dishwasher"."""
    en_para: str
    """Described in other words, for questions: "machine that washes the dishes"."""
    it: str
    """With its article: "la lavastoviglie"."""
    it_para: str
    """With its article, in other words: "la macchina che pulisce i piatti"."""
    extra: tuple[str, str] = ("", "")
    """A value of the subject's own for a fact (an ingredient, a fear), English and Italian."""


@dataclass(frozen=True, slots=True)
class Fact:
    text: dict[Lang, str]
    """The sentence planted in the text; the answer is between [[ and ]]."""
    named: dict[Lang, str]
    described: dict[Lang, str]
    section: int
    values: Callable[[random.Random, Lang], Slots]


@dataclass(frozen=True, slots=True)
class Kind:
    key: dict[Lang, str]
    """A word for file names: "manual", "manuale"."""
    title: dict[Lang, str]
    intro: dict[Lang, list[str]]
    sections: dict[Lang, list[tuple[str, list[str]]]]
    facts: list[Fact]
    subjects: list[Subject]
    name: Callable[[Names, random.Random, Lang], str]
    """The document's rare name (a model, a person, a street)."""


def _date(rng: random.Random, lang: Lang) -> str:
    day, month = rng.randint(2, 28), rng.randrange(12)
    return f"{day} {MONTHS[lang][month]}"


def _n(lo: int, hi: int) -> Callable[[random.Random, Lang], Slots]:
    return lambda rng, lang: {"v": str(rng.randint(lo, hi))}


def _person(rng: random.Random, lang: Lang, names: Names) -> str:
    return f"{rng.choice(FIRST_EN if lang == 'en' else FIRST_IT)} {names.word()}"


GENERIC: dict[Lang, list[tuple[str, list[str]]]] = {
    "en": [("Notes", ["Keep this document together with the other papers of the house.",
                      "Last revised by {person}, who can be reached by email for any correction.",
                      "A printed copy is kept in the blue folder on the shelf in the hall.",
                      "Older versions of these notes should be thrown away to avoid confusion.",
                      "If something here is unclear, write it down and ask at the next meeting.",
                      "Page numbers refer to the printed edition, which may differ slightly from the digital one."]),
           ("Contacts", ["For general questions call the office between nine and twelve on weekdays.",
                         "Messages left outside office hours are answered the next working day.",
                         "Urgent matters can be reported to {person} on the mobile number in the directory.",
                         "Letters should be addressed to the main office in {town}, not to individual people.",
                         "Please quote the reference number {n1}-{n2} in every message."])],
    "it": [("Note", ["Conservare questo documento insieme alle altre carte di casa.",
                     "Ultima revisione a cura di {person}, a cui si possono segnalare le correzioni via email.",
                     "Una copia stampata si trova nella cartella blu sullo scaffale dell'ingresso.",
                     "Le versioni precedenti di queste note vanno eliminate per evitare confusione.",
                     "Se qualcosa non è chiaro, annotatelo e chiedete alla prossima riunione.",
                     "I numeri di pagina si riferiscono all'edizione stampata, che può differire da quella digitale."]),
           ("Contatti", ["Per domande generali telefonare all'ufficio dalle nove alle dodici nei giorni feriali.",
                         "I messaggi lasciati fuori orario ricevono risposta il giorno lavorativo successivo.",
                         "Le questioni urgenti si segnalano a {person} al numero di cellulare in rubrica.",
                         "La posta va indirizzata alla sede di {town} e non alle singole persone.",
                         "Indicare sempre il numero di riferimento {n1}-{n2} in ogni comunicazione."])],
}
TOWNS = {"en": ["Ashford", "Bramley", "Colston", "Dunmore", "Elmridge", "Fairhaven", "Glenwood", "Hollins"],
         "it": ["Borgoverde", "Castelrosso", "Fontanelle", "Montebello", "Pratolungo", "Roccabianca", "Sassoferro",
                "Valmora"]}


APPLIANCES = Kind(
    key={"en": "manual", "it": "manuale"},
    title={"en": "{Name} {subject}: user manual", "it": "Manuale d'uso: {subject_bare} {Name}"},
    intro={"en": ["Thank you for choosing the {Name} {subject}.",
                  "Read this manual before the first use and keep it for future reference."],
           "it": ["Grazie per aver scelto il modello {Name}.",
                  "Leggere questo manuale prima del primo utilizzo e conservarlo per consultazioni future."]},
    sections={
        "en": [("Safety instructions", [
            "Do not let children play with the appliance or its packaging.",
            "Unplug the {subject} before cleaning it or changing any part.",
            "Never use an extension lead or a multiple socket for this appliance.",
            "Keep the ventilation openings free from dust and obstructions.",
            "Repairs must only be carried out by an authorised service centre."]),
            ("Installation", [
                "Place the {subject} on a flat, stable surface at least {n1} centimetres from the wall.",
                "Check that the voltage on the rating plate matches your mains supply.",
                "Remove all transport locks and protective film before switching on.",
                "The plug must remain accessible after the appliance has been installed.",
                "Wait {n2} hours before the first start if the appliance was carried lying down."]),
            ("Everyday use", [
                "Press the main button and choose a programme with the selector.",
                "The display shows the remaining time and any messages.",
                "The eco setting uses less energy but takes longer.",
                "You can pause the programme at any time by holding the start key for three seconds.",
                "A short beep confirms every choice you make on the control panel."]),
            ("Care and troubleshooting", [
                "Wipe the outside with a soft damp cloth; do not use abrasive products.",
                "If the appliance does not start, check the fuse and the plug first.",
                "Unusual noises often come from an object stuck in the moving parts.",
                "Contact customer service in {town} if the problem persists.",
                "Spare parts remain available for {n3} years after the end of production."])],
        "it": [("Avvertenze di sicurezza", [
            "Non lasciare che i bambini giochino con l'apparecchio o con l'imballaggio.",
            "Staccare la spina prima di pulire l'apparecchio o di sostituire qualsiasi parte.",
            "Non usare prolunghe né prese multiple per questo apparecchio.",
            "Tenere le aperture di ventilazione libere da polvere e ostacoli.",
            "Le riparazioni vanno eseguite soltanto da un centro di assistenza autorizzato."]),
            ("Installazione", [
                "Collocare l'apparecchio su una superficie piana e stabile, ad almeno {n1} centimetri dal muro.",
                "Verificare che la tensione indicata sulla targhetta corrisponda a quella della rete.",
                "Rimuovere i blocchi per il trasporto e la pellicola protettiva prima dell'accensione.",
                "La spina deve restare raggiungibile anche dopo l'installazione.",
                "Attendere {n2} ore prima del primo avvio se l'apparecchio è stato trasportato sdraiato."]),
            ("Uso quotidiano", [
                "Premere il tasto principale e scegliere un programma con il selettore.",
                "Il display mostra il tempo residuo ed eventuali messaggi.",
                "L'impostazione eco consuma meno energia ma richiede più tempo.",
                "Si può mettere in pausa il programma tenendo premuto il tasto di avvio per tre secondi.",
                "Un breve segnale acustico conferma ogni scelta fatta sul pannello comandi."]),
            ("Manutenzione e problemi", [
                "Pulire l'esterno con un panno morbido e umido; non usare prodotti abrasivi.",
                "Se l'apparecchio non si avvia, controllare prima il fusibile e la spina.",
                "I rumori insoliti dipendono spesso da un oggetto incastrato nelle parti in movimento.",
                "Rivolgersi al servizio clienti di {town} se il problema persiste.",
                "I ricambi restano disponibili per {n3} anni dopo la fine della produzione."])]},
    facts=[
        Fact(text={"en": "The manufacturer's warranty on the {Name} lasts [[{v} months]] from the date on the receipt.",
                   "it": "La garanzia del produttore per il modello {Name} dura [[{v} mesi]] dalla data dello "
                         "scontrino."},
             named={"en": "How long is the {Name} covered against defects?",
                    "it": "Per quanto tempo il modello {Name} è coperto in caso di difetti?"},
             described={"en": "For how long will faults in my {para} be repaired for free?",
                        "it": "Fino a quando si ottiene la riparazione gratuita per {para} se si rompe?"},
             section=3, values=_n(13, 59)),
        Fact(text={"en": "At full power the {Name} draws [[{v} watts]] from the socket.",
                   "it": "Alla massima potenza il modello {Name} assorbe [[{v} watt]] dalla presa."},
             named={"en": "What is the electricity consumption of the {Name} when running flat out?",
                    "it": "Quanta corrente consuma {Name} quando lavora al massimo?"},
             described={"en": "How much electricity does my {para} use at its maximum?",
                        "it": "Qual è il consumo elettrico massimo per {para}?"},
             section=1, values=lambda rng, lang: {"v": str(rng.randrange(300, 3000, 10))}),
        Fact(text={"en": "If the display shows [[code E{v}]], the water or air intake is blocked: check the tap, "
                         "the hose and the filter.",
                   "it": "Se il display mostra [[il codice E{v}]], l'ingresso dell'acqua o dell'aria è bloccato: "
                         "controllare il rubinetto, il tubo e il filtro."},
             named={"en": "Which message does the {Name} give when nothing can flow in?",
                    "it": "Quale segnalazione compare su {Name} quando non entra niente?"},
             described={"en": "What warning appears on my {para} when its supply is obstructed?",
                        "it": "Che avviso dà {para} quando l'alimentazione è ostruita?"},
             section=3, values=_n(10, 99)),
    ],
    subjects=[
        Subject("dishwasher", "machine that washes the plates and glasses", "la lavastoviglie",
                "la macchina che pulisce piatti e bicchieri"),
        Subject("washing machine", "appliance that does the laundry", "la lavatrice",
                "l'elettrodomestico che fa il bucato"),
        Subject("oven", "appliance for baking cakes and roasting", "il forno",
                "l'apparecchio per cuocere torte e arrosti"),
        Subject("fridge", "appliance that keeps food cold", "il frigorifero",
                "l'elettrodomestico che tiene il cibo al fresco"),
        Subject("vacuum cleaner", "device that sucks up dust from the floor", "l'aspirapolvere",
                "l'attrezzo che raccoglie lo sporco dai pavimenti"),
        Subject("espresso machine", "device that brews coffee", "la macchina da caffè",
                "l'apparecchio per preparare l'espresso"),
        Subject("air conditioner", "unit that cools the rooms in summer", "il condizionatore",
                "l'impianto che rinfresca le stanze d'estate"),
        Subject("boiler", "unit that heats the radiators and the shower water", "la caldaia",
                "l'impianto che scalda i termosifoni e l'acqua della doccia"),
        Subject("microwave", "appliance that warms up leftovers in a minute", "il microonde",
                "l'apparecchio che riscalda gli avanzi in un minuto"),
        Subject("tumble dryer", "machine that dries wet clothes", "l'asciugatrice",
                "la macchina che toglie l'umido dai panni lavati"),
        Subject("blender", "kitchen gadget that purees fruit", "il frullatore",
                "l'attrezzo da cucina che trita la frutta in crema"),
        Subject("bread maker", "machine that kneads and bakes loaves", "la macchina del pane",
                "l'apparecchio che impasta e sforna pagnotte"),
        Subject("electric kettle", "jug that boils water for tea", "il bollitore elettrico",
                "la brocca che scalda l'acqua per il tè"),
        Subject("robot lawn mower", "robot that cuts the grass", "il robot tagliaerba",
                "la macchinetta automatica che rasa il prato"),
        Subject("dehumidifier", "device that dries damp air in the rooms", "il deumidificatore",
                "l'apparecchio che asciuga l'aria delle stanze"),
    ],
    name=lambda names, rng, lang: f"{names.word()} {rng.choice('XKTRSZ')}{rng.randint(1, 9)}",
)

RECIPES = Kind(
    key={"en": "recipe", "it": "ricetta"},
    title={"en": "{Name}'s {subject}", "it": "{Subject} di {Name}"},
    intro={"en": ["This is how {Name} has always made {subject} for the family on Sundays.",
                  "It is simple food, but every step matters."],
           "it": ["Ecco come {Name} ha sempre preparato {subject} per la famiglia la domenica.",
                  "È un piatto semplice, ma ogni passaggio conta."]},
    sections={
        "en": [("Ingredients", [
            "You will need {n1} grams of flour, two eggs and a pinch of salt.",
            "Buy the vegetables at the market on the same day if you can.",
            "Olive oil should be extra virgin and not too peppery.",
            "Keep a glass of white wine at hand; some of it goes in the pan.",
            "Fresh herbs make a difference: parsley, thyme or a bay leaf."]),
            ("Method", [
                "Chop everything finely and soften it in a wide pan with a little oil.",
                "Add the rest gradually, tasting as you go.",
                "Stir with a wooden spoon so that nothing sticks to the bottom.",
                "If it becomes too thick, add a ladle of hot stock.",
                "Season with salt and pepper only at the end."]),
            ("Serving and keeping", [
                "Serve it warm with a slice of toasted bread.",
                "Leftovers keep for {n2} days in a closed container in the fridge.",
                "It freezes well in single portions.",
                "A glass of red wine from the hills goes well with it.",
                "Grandchildren usually ask for a second helping."])],
        "it": [("Ingredienti", [
            "Servono {n1} grammi di farina, due uova e un pizzico di sale.",
            "Se possibile comprate le verdure al mercato il giorno stesso.",
            "L'olio deve essere extravergine e non troppo piccante.",
            "Tenete a portata di mano un bicchiere di vino bianco: una parte va in padella.",
            "Le erbe fresche fanno la differenza: prezzemolo, timo o una foglia di alloro."]),
            ("Preparazione", [
                "Tritate tutto finemente e fatelo appassire in un tegame largo con un filo d'olio.",
                "Aggiungete il resto poco alla volta, assaggiando.",
                "Mescolate con un cucchiaio di legno perché niente si attacchi al fondo.",
                "Se diventa troppo denso, unite un mestolo di brodo caldo.",
                "Regolate di sale e pepe solo alla fine."]),
            ("Servire e conservare", [
                "Servite tiepido con una fetta di pane abbrustolito.",
                "Gli avanzi si conservano {n2} giorni in frigorifero in un contenitore chiuso.",
                "Si congela bene in porzioni singole.",
                "Si accompagna bene con un bicchiere di rosso delle colline.",
                "I nipoti di solito chiedono il bis."])]},
    facts=[
        Fact(text={"en": "Let it cook over a gentle heat for [[{v} minutes]] before tasting it.",
                   "it": "Lasciate cuocere a fuoco dolce per [[{v} minuti]] prima di assaggiare."},
             named={"en": "How long does {Name}'s {subject} stay on the stove?",
                    "it": "Quanto tempo resta sul fornello {subject} di {Name}?"},
             described={"en": "How long should the {para} simmer?",
                        "it": "Per quanto tempo deve sobbollire {para}?"},
             section=1, values=_n(12, 95)),
        Fact(text={"en": "These quantities are enough for [[{v} people]].",
                   "it": "Queste dosi bastano per [[{v} persone]]."},
             named={"en": "How many guests can {Name}'s dish feed?",
                    "it": "Quanti commensali sfama il piatto di {Name}?"},
             described={"en": "For how many diners is the {para} meant?",
                        "it": "Per quanti ospiti è pensata {para}?"},
             section=0, values=_n(2, 12)),
        Fact(text={"en": "The secret is [[{extra}]], added just before the end.",
                   "it": "Il segreto è [[{extra}]], aggiunto poco prima della fine."},
             named={"en": "What special touch does {Name} put in at the last moment?",
                    "it": "Qual è il tocco speciale che {Name} aggiunge all'ultimo?"},
             described={"en": "Which hidden extra goes into the {para} right before serving?",
                        "it": "Quale ingrediente nascosto si unisce appena prima di servire, preparando {para}?"},
             section=1, values=lambda rng, lang: {}),
    ],
    subjects=[
        Subject("lentil soup", "soup made with small brown legumes", "la zuppa di lenticchie",
                "la minestra di piccoli legumi marroni", ("a spoonful of smoked paprika", "un cucchiaio di paprika "
                                                         "affumicata")),
        Subject("apple pie", "fruit tart with a golden crust", "la torta di mele",
                "il dolce di frutta con la crosta dorata", ("a grating of orange zest", "una grattata di scorza "
                                                            "d'arancia")),
        Subject("mushroom risotto", "creamy rice with porcini", "il risotto ai funghi",
                "il riso cremoso con i porcini", ("a knob of cold butter", "una noce di burro freddo")),
        Subject("roast chicken", "whole bird cooked in the oven", "il pollo arrosto",
                "la gallina intera cotta al forno", ("a glass of dry cider", "un bicchiere di sidro secco")),
        Subject("vegetable lasagne", "baked layered pasta with courgettes", "le lasagne alle verdure",
                "la pasta al forno a strati con le zucchine", ("a handful of pine nuts", "una manciata di pinoli")),
        Subject("pancakes", "thin breakfast crêpes", "le frittelle",
                "le crespelle sottili della colazione", ("a drop of vanilla essence", "una goccia di essenza di "
                                                         "vaniglia")),
        Subject("tomato sauce", "red sauce for pasta", "il sugo di pomodoro",
                "il condimento rosso per la pastasciutta", ("a teaspoon of sugar", "un cucchiaino di zucchero")),
        Subject("milk bread rolls", "soft little buns", "i panini al latte",
                "le pagnottine morbide", ("a spoonful of honey", "un cucchiaio di miele")),
        Subject("chocolate cake", "dark cocoa dessert", "la torta al cioccolato",
                "il dolce scuro al cacao", ("a pinch of chilli", "un pizzico di peperoncino")),
        Subject("fish soup", "seafood stew from the coast", "la zuppa di pesce",
                "lo stufato di mare della costa", ("a splash of anise liqueur", "uno spruzzo di liquore all'anice")),
        Subject("potato gnocchi", "small potato dumplings", "gli gnocchi di patate",
                "i piccoli bocconcini fatti coi tuberi", ("a grating of nutmeg", "una grattata di noce moscata")),
        Subject("lemon biscuits", "crunchy citrus cookies", "i biscotti al limone",
                "i dolcetti croccanti agli agrumi", ("a few drops of lavender water", "qualche goccia di acqua di "
                                                     "lavanda")),
        Subject("stuffed peppers", "baked capsicums filled with rice", "i peperoni ripieni",
                "gli ortaggi rossi farciti di riso al forno", ("a spoonful of capers", "un cucchiaio di capperi")),
        Subject("onion tart", "savoury pie with sweet onions", "la torta salata di cipolle",
                "la quiche con gli ortaggi dolci di Tropea", ("a sprinkle of poppy seeds", "una spolverata di semi "
                                                              "di papavero")),
        Subject("beef stew", "slow-cooked meat casserole", "lo spezzatino di manzo",
                "la carne in umido cotta a lungo", ("a square of dark chocolate", "un quadratino di cioccolato "
                                                    "fondente")),
    ],
    name=lambda names, rng, lang: (f"Aunt {rng.choice(FIRST_EN[::2])} {names.word()}" if lang == "en"
                                   else f"nonna {rng.choice(FEMALE_IT)} {names.word()}"),
)

TRAVEL = Kind(
    key={"en": "travel", "it": "viaggio"},
    title={"en": "Visiting the {Name} {subject}", "it": "Visita: {subject_bare} {Name}"},
    intro={"en": ["Practical notes for a day out at the {Name} {subject}, collected after our last trip.",
                  "Check the website before leaving, as details change from year to year."],
           "it": ["Appunti pratici per una giornata a {Name}, raccolti dopo l'ultima gita.",
                  "Controllate il sito prima di partire, perché i dettagli cambiano di anno in anno."]},
    sections={
        "en": [("Getting there", [
            "From {town} the drive takes about {n1} minutes on the provincial road.",
            "Parking is limited at weekends, so arrive early.",
            "The last stretch is a gravel track; drive slowly.",
            "Cyclists can follow the signposted route along the river.",
            "There is a petrol station at the last village before the turn-off."]),
            ("Tickets and opening", [
                "Groups of more than {n2} people should book in advance.",
                "Dogs on a lead are welcome in the outdoor areas.",
                "Cards are accepted, but the kiosk only takes cash.",
                "Guided tours start on the hour and last about forty minutes.",
                "Students and pensioners get a discount on presentation of a card."]),
            ("What to see and bring", [
                "The view from the terrace is best in the late afternoon.",
                "Bring a warm jacket even in summer; the weather turns quickly.",
                "The small shop sells local cheese and honey.",
                "Benches and picnic tables are spread along the path.",
                "Toilets are near the entrance and at the far end of the site."])],
        "it": [("Come arrivare", [
            "Da {town} ci vogliono circa {n1} minuti di auto sulla provinciale.",
            "Il parcheggio è ridotto nei fine settimana: conviene arrivare presto.",
            "L'ultimo tratto è sterrato; guidate piano.",
            "Chi va in bicicletta può seguire il percorso segnalato lungo il fiume.",
            "C'è un distributore di benzina nell'ultimo paese prima della deviazione."]),
            ("Biglietti e orari", [
                "I gruppi di più di {n2} persone devono prenotare.",
                "I cani al guinzaglio sono ammessi nelle aree all'aperto.",
                "Si accettano carte, ma il chiosco prende solo contanti.",
                "Le visite guidate partono allo scoccare dell'ora e durano una quarantina di minuti.",
                "Studenti e pensionati hanno uno sconto presentando la tessera."]),
            ("Cosa vedere e cosa portare", [
                "La vista dalla terrazza è più bella nel tardo pomeriggio.",
                "Portate una giacca pesante anche d'estate: il tempo cambia in fretta.",
                "Il piccolo negozio vende formaggi e miele della zona.",
                "Lungo il sentiero ci sono panchine e tavoli da picnic.",
                "I bagni sono vicino all'ingresso e in fondo all'area."])]},
    facts=[
        Fact(text={"en": "The {subject} closes for the season on [[{v}]] and opens again in spring.",
                   "it": "La struttura chiude per la stagione il [[{v}]] e riapre in primavera."},
             named={"en": "Until what day can we still go to {Name} this year?",
                    "it": "Fino a quando resta aperto {Name} quest'anno?"},
             described={"en": "Until which day can visitors still go up to the {para}?",
                        "it": "Qual è l'ultimo giorno utile per andare a vedere {para}?"},
             section=1, values=lambda rng, lang: {"v": _date(rng, lang)}),
        Fact(text={"en": "A full-price ticket costs [[{v} euros]]; children under six go in free.",
                   "it": "Il biglietto intero costa [[{v} euro]]; i bambini sotto i sei anni entrano gratis."},
             named={"en": "How much do grown-ups pay to get into {Name}?",
                    "it": "Quanto paga un adulto per entrare a {Name}?"},
             described={"en": "What is the admission fee for adults at the {para}?",
                        "it": "Qual è la tariffa per gli adulti per {para}?"},
             section=1, values=lambda rng, lang: {"v": f"{rng.randint(3, 29)}{'.' if lang == 'en' else ','}"
                                                       f"{rng.choice(['00', '50'])}"}),
        Fact(text={"en": "Bus [[number {v}]] stops right at the entrance every hour.",
                   "it": "L'autobus [[numero {v}]] ferma proprio all'ingresso ogni ora."},
             named={"en": "Which coach line should I take to reach {Name} without a car?",
                    "it": "Con quale linea di pullman si raggiunge {Name} senza macchina?"},
             described={"en": "Which public transport line reaches the {para}?",
                        "it": "Con quale mezzo pubblico si raggiunge {para}?"},
             section=0, values=_n(11, 399)),
    ],
    subjects=[
        Subject("mountain hut", "refuge where hikers sleep high in the Alps", "il rifugio",
                "la baita dove dormono gli escursionisti in alta quota"),
        Subject("lakeside campsite", "place to pitch a tent by the water", "il campeggio sul lago",
                "l'area per piantare la tenda in riva all'acqua"),
        Subject("city museum", "town's collection of paintings and old objects", "il museo civico",
                "la raccolta cittadina di quadri e oggetti antichi"),
        Subject("thermal spa", "hot springs for bathing", "le terme",
                "le sorgenti calde dove fare il bagno"),
        Subject("castle", "medieval fortress on the hill", "il castello",
                "la fortezza medievale sulla collina"),
        Subject("botanical garden", "park of rare plants and greenhouses", "l'orto botanico",
                "il parco di piante rare e serre"),
        Subject("chairlift", "open seats that carry skiers up the slope", "la seggiovia",
                "l'impianto a sedili che porta su gli sciatori"),
        Subject("ferry", "boat that carries cars across the lake", "il traghetto",
                "la nave che porta le auto dall'altra parte del lago"),
        Subject("youth hostel", "cheap dormitory lodging for backpackers", "l'ostello",
                "l'alloggio economico in camerata per chi viaggia con lo zaino"),
        Subject("show cave", "underground caverns with stalactites", "le grotte",
                "le caverne sotterranee con le stalattiti"),
        Subject("winery", "vineyard estate with tastings", "la cantina",
                "l'azienda vinicola con le degustazioni"),
        Subject("wildlife park", "zoo with animals roaming free", "il parco faunistico",
                "il giardino zoologico con gli animali in libertà"),
        Subject("lighthouse", "tower that guides ships at night", "il faro",
                "la torre che guida le navi di notte"),
        Subject("observatory", "telescope dome for watching stars", "l'osservatorio",
                "la cupola col telescopio per guardare le stelle"),
        Subject("cable car", "gondola hanging from a wire up the mountain", "la funivia",
                "la cabina appesa a un cavo che sale in montagna"),
    ],
    name=lambda names, rng, lang: names.word(),
)

RENTALS = Kind(
    key={"en": "lease", "it": "contratto"},
    title={"en": "Tenancy agreement: {subject}, {Name}", "it": "Contratto di locazione: {subject_bare}, {Name}"},
    intro={"en": ["This agreement is made between the landlord, {person}, and the tenant named below.",
                  "It concerns the {subject} at {Name} and its fittings as listed in the inventory."],
           "it": ["Il presente contratto è stipulato tra il locatore, {person}, e il conduttore sotto indicato.",
                  "Riguarda l'immobile in {Name} con gli arredi elencati nell'inventario."]},
    sections={
        "en": [("Rent and payments", [
            "The monthly rent is {n1}0 euros, paid by bank transfer.",
            "Service charges for the stairs and the garden are shared among all tenants.",
            "Late payments carry interest at the legal rate.",
            "The rent is updated every year in line with the consumer price index.",
            "Receipts are sent by email within a week of each payment."]),
            ("Duration and ending", [
                "The agreement runs for {n2} years and renews itself unless cancelled.",
                "At the end the premises must be returned clean and in good order.",
                "Keys, remote controls and badges are handed back on the last day.",
                "Any damage beyond normal wear is charged to the tenant.",
                "A final inspection is carried out together with the landlord."]),
            ("Use of the premises", [
                "The premises may not be sublet without written permission.",
                "Small repairs, such as taps and light bulbs, are the tenant's responsibility.",
                "Structural works and the boiler are the landlord's responsibility.",
                "Noise must be kept low between ten at night and seven in the morning.",
                "Bicycles are kept in the shared room on the ground floor."])],
        "it": [("Canone e pagamenti", [
            "Il canone mensile è di {n1}0 euro, da versare con bonifico.",
            "Le spese per scale e giardino sono ripartite fra tutti gli inquilini.",
            "I ritardi comportano gli interessi al tasso legale.",
            "Il canone è aggiornato ogni anno secondo l'indice dei prezzi al consumo.",
            "Le ricevute sono inviate per email entro una settimana da ogni pagamento."]),
            ("Durata e recesso", [
                "Il contratto dura {n2} anni e si rinnova da sé salvo disdetta.",
                "Alla scadenza i locali vanno restituiti puliti e in buono stato.",
                "Chiavi, telecomandi e badge si riconsegnano l'ultimo giorno.",
                "Eventuali danni oltre la normale usura sono a carico del conduttore.",
                "Il sopralluogo finale si fa insieme al locatore."]),
            ("Uso dei locali", [
                "È vietato subaffittare senza permesso scritto.",
                "Le piccole riparazioni, come rubinetti e lampadine, spettano al conduttore.",
                "Le opere strutturali e la caldaia spettano al locatore.",
                "Tra le dieci di sera e le sette del mattino bisogna limitare il rumore.",
                "Le biciclette si tengono nel locale comune al piano terra."])]},
    facts=[
        Fact(text={"en": "On signing, the tenant leaves a security deposit of [[{v} euros]], returned at the end.",
                   "it": "Alla firma il conduttore versa un deposito cauzionale di [[{v} euro]], restituito alla "
                         "fine."},
             named={"en": "How much money is held as a guarantee for the place at {Name}?",
                    "it": "Quanti soldi restano in garanzia al proprietario per l'immobile in {Name}?"},
             described={"en": "What sum do I hand over as a guarantee when I rent the {para}?",
                        "it": "Che somma si lascia come garanzia quando si prende in affitto {para}?"},
             section=0, values=lambda rng, lang: {"v": str(rng.randrange(300, 5000, 50))}),
        Fact(text={"en": "Either party may end the agreement by giving [[{v} months' notice]] in writing.",
                   "it": "Ciascuna parte può recedere con un [[preavviso di {v} mesi]] per iscritto."},
             named={"en": "How far ahead must I warn the owner before moving out of {Name}?",
                    "it": "Con quanto anticipo devo avvisare il proprietario prima di lasciare {Name}?"},
             described={"en": "How early do I have to tell the landlord I am leaving the {para}?",
                        "it": "Quanto tempo prima bisogna dare disdetta se si vuole lasciare {para}?"},
             section=1, values=_n(1, 9)),
        Fact(text={"en": "The rent must reach the landlord's account by [[day {v} of each month]].",
                   "it": "Il canone deve arrivare sul conto del locatore entro [[il giorno {v} di ogni mese]]."},
             named={"en": "By what date should the monthly payment for {Name} arrive?",
                    "it": "Entro quale data va saldata la mensilità per {Name}?"},
             described={"en": "What is the deadline each month for paying for the {para}?",
                        "it": "Qual è la scadenza mensile per pagare {para}?"},
             section=0, values=_n(2, 28)),
    ],
    subjects=[
        Subject("two-bedroom flat", "apartment with two sleeping rooms", "l'appartamento di due camere",
                "la casa con due stanze da letto"),
        Subject("garage", "covered place to keep a car", "il box auto",
                "il locale chiuso dove tenere la macchina"),
        Subject("holiday cottage", "little house for summer holidays", "la casetta per le vacanze",
                "la villetta per le ferie estive"),
        Subject("shop unit", "premises for a retail business on the street", "il negozio",
                "il locale commerciale con vetrina su strada"),
        Subject("student room", "bedroom let to a university student", "la stanza per studenti",
                "la camera affittata a chi frequenta l'università"),
        Subject("office", "rooms for desk work", "l'ufficio",
                "i locali per il lavoro alla scrivania"),
        Subject("boat mooring", "berth for a sailing boat in the marina", "il posto barca",
                "l'ormeggio per una barca a vela nel porticciolo"),
        Subject("parking space", "open-air spot for one car", "il posto auto scoperto",
                "lo spazio all'aperto per parcheggiare una vettura"),
        Subject("cellar", "underground storeroom", "la cantina",
                "il ripostiglio sotterraneo"),
        Subject("farmhouse", "country house with land", "il casale",
                "la casa di campagna con il terreno"),
        Subject("studio flat", "one-room apartment", "il monolocale",
                "l'alloggio di un solo ambiente"),
        Subject("warehouse", "large storage building for goods", "il magazzino",
                "il grande capannone per le merci"),
        Subject("allotment", "small plot for growing vegetables", "l'orto urbano",
                "il pezzetto di terra per coltivare verdure"),
        Subject("camper van", "motorhome for road trips", "il camper",
                "la casa su ruote per i viaggi"),
        Subject("attic loft", "room under the roof", "la mansarda",
                "la stanza sotto il tetto"),
    ],
    name=lambda names, rng, lang: (f"{rng.randint(1, 120)} {names.word()} Street" if lang == "en"
                                   else f"via {names.word()} {rng.randint(1, 120)}"),
)

MEDICINES = Kind(
    key={"en": "leaflet", "it": "foglietto"},
    title={"en": "{Name}: package leaflet (for {subject})", "it": "{Name}: foglio illustrativo ({subject_bare})"},
    intro={"en": ["Read all of this leaflet carefully before you start taking {Name}.",
                  "Keep it: you may need to read it again."],
           "it": ["Legga attentamente tutto il foglio prima di prendere {Name}.",
                  "Lo conservi: potrebbe doverlo rileggere."]},
    sections={
        "en": [("How to take it", [
            "Swallow the tablets whole with a glass of water.",
            "Take them after a meal to protect the stomach.",
            "Children under twelve should not take this medicine without medical advice.",
            "If you forget a dose, take the next one at the usual time.",
            "Do not use for more than {n1} days in a row without asking a doctor."]),
            ("Possible side effects", [
                "Like all medicines, this one can cause side effects, although not everybody gets them.",
                "Stop taking it and see a doctor at once if you have difficulty breathing.",
                "Tell your pharmacist about any effect not listed here.",
                "Mild stomach upset is common and usually passes.",
                "Effects on driving are unlikely but possible in sensitive people."]),
            ("Storing and other information", [
                "Keep out of the sight and reach of children.",
                "Do not use after the expiry date printed on the box.",
                "Each box contains {n2} tablets in blister packs.",
                "Do not throw medicines away in the sink or the household rubbish.",
                "The marketing authorisation holder is based in {town}."])],
        "it": [("Come prenderlo", [
            "Deglutisca le compresse intere con un bicchiere d'acqua.",
            "Le prenda dopo i pasti per proteggere lo stomaco.",
            "Sotto i dodici anni non va dato senza parere medico.",
            "Se dimentica una dose, prenda la successiva all'ora solita.",
            "Non usi per più di {n1} giorni di seguito senza consultare il medico."]),
            ("Possibili effetti indesiderati", [
                "Come tutti i medicinali, può causare effetti indesiderati, sebbene non tutte le persone li "
                "manifestino.",
                "Interrompa e si rivolga subito a un medico se ha difficoltà a respirare.",
                "Informi il farmacista di ogni effetto non elencato qui.",
                "Un leggero disturbo di stomaco è comune e di solito passa.",
                "Gli effetti sulla guida sono improbabili ma possibili nelle persone sensibili."]),
            ("Conservazione e altre informazioni", [
                "Tenere fuori dalla vista e dalla portata dei bambini.",
                "Non usare dopo la data di scadenza stampata sulla scatola.",
                "Ogni confezione contiene {n2} compresse in blister.",
                "Non gettare i medicinali nel lavandino o nei rifiuti domestici.",
                "Il titolare dell'autorizzazione all'immissione in commercio ha sede a {town}."])]},
    facts=[
        Fact(text={"en": "Adults must not take more than [[{v} tablets in 24 hours]].",
                   "it": "Gli adulti non devono superare [[{v} compresse nelle 24 ore]]."},
             named={"en": "What is the most {Name} a grown-up may swallow per day?",
                    "it": "Qual è la quantità massima di {Name} per un adulto in una giornata?"},
             described={"en": "What is the daily limit of pills for an adult using the remedy for {para}?",
                        "it": "Quante pillole al giorno al massimo con il rimedio per {para}?"},
             section=0, values=_n(2, 8)),
        Fact(text={"en": "Store the box below [[{v} °C]] in a dry place.",
                   "it": "Conservi la confezione a temperatura inferiore a [[{v} °C]] in luogo asciutto."},
             named={"en": "How warm may it get where I keep the {Name} pack?",
                    "it": "Fino a che calore si può tenere la scatola di {Name}?"},
             described={"en": "What is the maximum temperature for keeping the medicine for {para}?",
                        "it": "A quanti gradi al massimo va tenuto il farmaco per {para}?"},
             section=2, values=_n(8, 30)),
        Fact(text={"en": "A rare side effect is [[{extra}]], which goes away when you stop.",
                   "it": "Un effetto indesiderato raro è [[{extra}]], che scompare sospendendo il farmaco."},
             named={"en": "Which unusual unwanted reaction can {Name} cause?",
                    "it": "Quale reazione insolita può dare {Name}?"},
             described={"en": "What uncommon adverse reaction is reported for the treatment of {para}?",
                        "it": "Quale reazione avversa poco comune è segnalata tra i rimedi contro {para}?"},
             section=1, values=lambda rng, lang: {}),
    ],
    subjects=[
        Subject("headache", "a pounding head", "mal di testa", "la testa che martella",
                ("a ringing in the ears", "un ronzio nelle orecchie")),
        Subject("cough", "a chesty irritation that makes you hack", "tosse", "l'irritazione del petto che fa "
                "tossicchiare", ("a metallic taste in the mouth", "un sapore metallico in bocca")),
        Subject("hay fever", "pollen allergy with sneezing", "raffreddore da fieno",
                "l'allergia ai pollini con gli starnuti", ("blurred vision", "la vista annebbiata")),
        Subject("heartburn", "acid rising from the stomach", "bruciore di stomaco",
                "l'acido che risale dallo stomaco", ("hiccups that last for hours", "un singhiozzo che dura ore")),
        Subject("insomnia", "trouble falling asleep", "insonnia", "la fatica ad addormentarsi",
                ("vivid dreams", "sogni molto vividi")),
        Subject("sore throat", "pain when swallowing", "mal di gola", "il dolore quando si deglutisce",
                ("a numb tongue", "la lingua intorpidita")),
        Subject("back pain", "an aching spine", "mal di schiena", "la colonna vertebrale dolorante",
                ("cold fingers and toes", "dita delle mani e dei piedi fredde")),
        Subject("cold sores", "blisters on the lips", "herpes labiale", "le vesciche sulle labbra",
                ("a tingling of the scalp", "un formicolio al cuoio capelluto")),
        Subject("motion sickness", "feeling queasy in cars and boats", "mal d'auto",
                "la nausea in macchina e in barca", ("a dry mouth", "la bocca secca")),
        Subject("indigestion", "a heavy stomach after big meals", "cattiva digestione",
                "lo stomaco pesante dopo le abbuffate", ("yellowish skin", "la pelle giallastra")),
        Subject("muscle cramps", "sudden painful knots in the calves", "crampi muscolari",
                "i nodi dolorosi e improvvisi ai polpacci", ("pink urine", "urine rosate")),
        Subject("dry eyes", "gritty, itchy eyes", "occhi secchi", "gli occhi che pizzicano e grattano",
                ("sensitivity to bright light", "fastidio alla luce forte")),
        Subject("sunburn", "red skin after too much sun", "scottature solari",
                "la pelle arrossata dopo troppo sole", ("itchy palms", "prurito ai palmi delle mani")),
        Subject("mouth ulcers", "painful sores inside the cheek", "afte", "le piaghette dolorose dentro la "
                "guancia", ("a hoarse voice", "la voce rauca")),
        Subject("blocked nose", "a stuffed-up nose that will not clear", "naso chiuso",
                "le narici tappate che non si liberano", ("a racing heartbeat", "il battito accelerato")),
    ],
    name=lambda names, rng, lang: f"{names.word()} {rng.choice([50, 100, 200, 250, 400, 500])} mg",
)

SCHOOL = Kind(
    key={"en": "notes", "it": "appunti"},
    title={"en": "Class notes: {subject} (Mr {Name})", "it": "Appunti di classe: {subject_bare} (prof. {Name})"},
    intro={"en": ["Notes taken in class {n1}B during Mr {Name}'s lessons on {subject}.",
                  "Copy them neatly into your exercise book before the test."],
           "it": ["Appunti presi in {n1}B durante le lezioni del professor {Name} su {subject}.",
                  "Ricopiateli in bella sul quaderno prima della verifica."]},
    sections={
        "en": [("What we covered", [
            "We started with a short recap of the previous unit.",
            "The teacher drew a diagram on the board and explained each part.",
            "We watched a short video and then discussed it in pairs.",
            "Key words are underlined in the textbook; learn their meaning.",
            "There was time at the end for questions."]),
            ("Homework", [
                "Bring coloured pencils and a ruler on Thursday.",
                "Anyone who was absent should ask a classmate for the handouts.",
                "Work must be handed in on paper, not by email.",
                "Neat presentation counts towards the mark.",
                "Those who finish early can try the challenge questions."]),
            ("Test and outing", [
                "The test lasts one hour and has {n2} questions.",
                "Calculators are not allowed.",
                "Revision session in the library after school the day before.",
                "Parents must sign the permission slip by Friday.",
                "Bring a packed lunch and comfortable shoes for the outing."])],
        "it": [("Cosa abbiamo fatto", [
            "Abbiamo cominciato con un breve ripasso dell'unità precedente.",
            "Il professore ha disegnato uno schema alla lavagna e ha spiegato ogni parte.",
            "Abbiamo visto un breve video e ne abbiamo parlato a coppie.",
            "Le parole chiave sono sottolineate sul libro; imparatene il significato.",
            "Alla fine c'è stato tempo per le domande."]),
            ("Compiti", [
                "Portate matite colorate e righello giovedì.",
                "Chi era assente chieda le fotocopie a un compagno.",
                "I lavori si consegnano su carta, non per email.",
                "L'ordine conta per il voto.",
                "Chi finisce prima può provare gli esercizi di sfida."]),
            ("Verifica e uscita", [
                "La verifica dura un'ora e ha {n2} domande.",
                "Non si può usare la calcolatrice.",
                "Ripasso in biblioteca dopo le lezioni il giorno prima.",
                "I genitori devono firmare l'autorizzazione entro venerdì.",
                "Per l'uscita portate il pranzo al sacco e scarpe comode."])]},
    facts=[
        Fact(text={"en": "The written test on this unit will be on [[{v}]], first period.",
                   "it": "La verifica scritta su questa unità sarà il [[{v}]], alla prima ora."},
             named={"en": "When does Mr {Name}'s class sit the exam?",
                    "it": "Quando c'è il compito in classe del professor {Name}?"},
             described={"en": "On what day is the assessment about {para}?",
                        "it": "In che giorno si fa la prova che riguarda {para}?"},
             section=2, values=lambda rng, lang: {"v": _date(rng, lang)}),
        Fact(text={"en": "For homework, do [[exercises {v} to {w} on page {p}]] of the workbook.",
                   "it": "Per casa fate [[gli esercizi da {v} a {w} a pagina {p}]] del quaderno operativo."},
             named={"en": "What did Mr {Name} set for pupils to prepare at home?",
                    "it": "Che lavoro ha assegnato il professor {Name} da preparare a casa?"},
             described={"en": "Which assignment was given after the lesson on {para}?",
                        "it": "Quale lavoro è stato dato dopo aver spiegato {para}?"},
             section=1, values=lambda rng, lang: {"v": str(a := rng.randint(1, 20)), "w": str(a + rng.randint(3, 9)),
                                                  "p": str(rng.randint(12, 280))}),
        Fact(text={"en": "On the outing we will visit [[{extra}]].",
                   "it": "Durante l'uscita visiteremo [[{extra}]]."},
             named={"en": "Where is Mr {Name} taking the pupils on the trip?",
                    "it": "Dove porta i ragazzi il professor {Name} in gita?"},
             described={"en": "Where will pupils go on the excursion linked to {para}?",
                        "it": "Dove andranno gli alunni in gita per approfondire {para}?"},
             section=2, values=lambda rng, lang: {}),
    ],
    subjects=[
        Subject("volcanoes", "mountains that erupt lava", "i vulcani", "le montagne che eruttano lava",
                ("the geology museum", "il museo di geologia")),
        Subject("the French Revolution", "the 1789 uprising in Paris", "la Rivoluzione francese",
                "la rivolta parigina del 1789", ("the print archive", "l'archivio delle stampe")),
        Subject("fractions", "dividing whole numbers into parts", "le frazioni",
                "la divisione dell'intero in parti", ("the science centre", "il centro della scienza")),
        Subject("photosynthesis", "how leaves turn sunlight into sugar", "la fotosintesi",
                "come le foglie trasformano la luce in zucchero", ("the tropical greenhouse", "la serra tropicale")),
        Subject("the Roman Empire", "ancient Rome and its emperors", "l'Impero romano",
                "l'antica Roma e i suoi imperatori", ("the amphitheatre ruins", "i resti dell'anfiteatro")),
        Subject("the water cycle", "how rain, rivers and clouds are linked", "il ciclo dell'acqua",
                "come pioggia, fiumi e nuvole sono collegati", ("the dam on the river", "la diga sul fiume")),
        Subject("the solar system", "the planets going round the sun", "il sistema solare",
                "i pianeti che girano intorno al sole", ("the planetarium", "il planetario")),
        Subject("the human heart", "the organ that pumps blood", "il cuore umano",
                "l'organo che pompa il sangue", ("the anatomy lab of the hospital", "il laboratorio di anatomia "
                                                 "dell'ospedale")),
        Subject("Romantic poetry", "nineteenth-century verse about nature and feeling", "la poesia romantica",
                "i versi ottocenteschi su natura e sentimento", ("the poet's birthplace", "la casa natale del "
                                                                 "poeta")),
        Subject("electric circuits", "batteries, wires and bulbs", "i circuiti elettrici",
                "pile, fili e lampadine", ("the power station", "la centrale elettrica")),
        Subject("the Renaissance", "the age of Leonardo and Michelangelo", "il Rinascimento",
                "l'epoca di Leonardo e Michelangelo", ("the painting gallery", "la pinacoteca")),
        Subject("plate tectonics", "how continents drift and collide", "la tettonica a placche",
                "come i continenti si spostano e si scontrano", ("the earthquake station", "la stazione sismica")),
        Subject("percentages", "parts per hundred and discounts", "le percentuali",
                "le parti su cento e gli sconti", ("the local bank branch", "la filiale della banca")),
        Subject("the digestive system", "what happens to food in the body", "l'apparato digerente",
                "cosa succede al cibo dentro il corpo", ("the dairy farm", "la fattoria del latte")),
        Subject("medieval castles", "fortified homes of knights", "i castelli medievali",
                "le dimore fortificate dei cavalieri", ("the armour collection", "la collezione di armature")),
    ],
    name=lambda names, rng, lang: names.word(),
)

CLUBS = Kind(
    key={"en": "rules", "it": "regolamento"},
    title={"en": "{Name} {subject}: members' rules", "it": "Regolamento soci: {subject_bare} {Name}"},
    intro={"en": ["These rules were approved by the general meeting of the {Name} {subject}.",
                  "Every member receives a copy on joining."],
           "it": ["Questo regolamento è stato approvato dall'assemblea di {Name}.",
                  "Ogni socio ne riceve una copia all'iscrizione."]},
    sections={
        "en": [("Membership", [
            "Anyone over sixteen may apply to join.",
            "Applications are approved by the committee within {n1} days.",
            "Members receive a card that must be shown on request.",
            "Membership may be suspended for behaviour that harms the club.",
            "Honorary members are appointed by the general meeting."]),
            ("Meetings and activities", [
                "The calendar of activities is published on the notice board each season.",
                "Members help in turn with setting up and tidying the room.",
                "Equipment belonging to the club may not be taken home without permission.",
                "Minutes of each meeting are sent to all members.",
                "Proposals for new activities are welcome at any time."]),
            ("Guests and conduct", [
                "Guests must sign the visitors' book on arrival.",
                "Members are responsible for the behaviour of their guests.",
                "Smoking is not allowed anywhere on the premises.",
                "Disputes are settled by the committee, whose decision is final.",
                "The club is not responsible for personal belongings left behind."])],
        "it": [("Iscrizione", [
            "Può chiedere l'iscrizione chiunque abbia compiuto sedici anni.",
            "Le domande sono approvate dal consiglio entro {n1} giorni.",
            "I soci ricevono una tessera da mostrare su richiesta.",
            "L'iscrizione può essere sospesa per comportamenti dannosi per il circolo.",
            "I soci onorari sono nominati dall'assemblea."]),
            ("Incontri e attività", [
                "Il calendario delle attività è pubblicato in bacheca ogni stagione.",
                "I soci aiutano a turno a preparare e riordinare la sala.",
                "L'attrezzatura del circolo non si porta a casa senza permesso.",
                "Il verbale di ogni incontro viene inviato a tutti i soci.",
                "Le proposte di nuove attività sono sempre benvenute."]),
            ("Ospiti e comportamento", [
                "Gli ospiti firmano il registro dei visitatori all'arrivo.",
                "I soci rispondono del comportamento dei propri ospiti.",
                "È vietato fumare in tutti i locali.",
                "Le controversie sono risolte dal consiglio, che decide in via definitiva.",
                "Il circolo non risponde degli oggetti personali dimenticati."])]},
    facts=[
        Fact(text={"en": "The yearly membership fee is [[{v} euros]], due by the end of January.",
                   "it": "La quota associativa annuale è di [[{v} euro]], da versare entro fine gennaio."},
             named={"en": "How much does it cost to belong to {Name} for a year?",
                    "it": "Quanto costa far parte di {Name} per un anno?"},
             described={"en": "What is the annual subscription for the {para}?",
                        "it": "Quanto si paga ogni anno per frequentare {para}?"},
             section=0, values=_n(15, 480)),
        Fact(text={"en": "Members meet every [[{v} at {t}]] in the club room.",
                   "it": "I soci si riuniscono ogni [[{v} alle {t}]] nella sede."},
             named={"en": "When do the {Name} people get together each week?",
                    "it": "Quando si ritrovano ogni settimana quelli di {Name}?"},
             described={"en": "On which evening does the {para} gather?",
                        "it": "In che giorno della settimana si vede {para}?"},
             section=1, values=lambda rng, lang: {"v": rng.choice(WEEKDAYS[lang]),
                                                  "t": f"{rng.randint(17, 21)}:{rng.choice(['00', '15', '30'])}"}),
        Fact(text={"en": "Each member may bring [[at most {v} guests]] per month.",
                   "it": "Ogni socio può portare [[al massimo {v} ospiti]] al mese."},
             named={"en": "How many visitors can someone from {Name} invite?",
                    "it": "Quante persone esterne può invitare un iscritto a {Name}?"},
             described={"en": "How many friends may a member take along to the {para}?",
                        "it": "Quanti amici può accompagnare un socio presso {para}?"},
             section=2, values=_n(1, 9)),
    ],
    subjects=[
        Subject("chess club", "club where people play kings and queens on a board", "il circolo degli scacchi",
                "il gruppo che gioca con re e regine sulla scacchiera"),
        Subject("swimming club", "pool team", "la società di nuoto", "la squadra della piscina"),
        Subject("choir", "group of singers", "il coro", "il gruppo di cantanti"),
        Subject("cycling club", "group that rides bikes on Sundays", "il gruppo ciclistico",
                "la compagnia che pedala la domenica"),
        Subject("book club", "readers who discuss novels together", "il club del libro",
                "i lettori che discutono romanzi insieme"),
        Subject("photography club", "group of camera enthusiasts", "il circolo fotografico",
                "gli appassionati di macchine fotografiche"),
        Subject("tennis club", "courts where members play with rackets", "il circolo del tennis",
                "i campi dove i soci giocano con la racchetta"),
        Subject("hiking association", "walkers who go up mountain trails", "l'associazione escursionisti",
                "chi cammina sui sentieri di montagna"),
        Subject("gardening club", "people who share tips about flowers and vegetables", "il club del giardinaggio",
                "chi si scambia consigli su fiori e ortaggi"),
        Subject("rowing club", "crews who train on the river with oars", "la società canottieri",
                "gli equipaggi che si allenano sul fiume coi remi"),
        Subject("climbing gym", "indoor wall for bouldering", "la palestra di arrampicata",
                "la parete al coperto per scalare"),
        Subject("running club", "joggers who train together", "il gruppo podistico",
                "chi fa jogging in compagnia"),
        Subject("knitting circle", "people making scarves with wool and needles", "il circolo della maglia",
                "chi fa sciarpe con lana e ferri"),
        Subject("amateur drama society", "people who put on plays", "la compagnia teatrale amatoriale",
                "chi mette in scena commedie per passione"),
        Subject("astronomy club", "stargazers with telescopes", "il gruppo astrofili",
                "chi osserva il cielo con i telescopi"),
    ],
    name=lambda names, rng, lang: names.word(),
)

VEHICLES = Kind(
    key={"en": "vehicle", "it": "veicolo"},
    title={"en": "{Name} {subject}: care and maintenance", "it": "{Name}: cura e manutenzione ({subject_bare})"},
    intro={"en": ["A short owner's guide to looking after the {Name} {subject}.",
                  "Regular care keeps it safe and saves money on repairs."],
           "it": ["Breve guida per il proprietario del modello {Name}.",
                  "La cura regolare lo mantiene sicuro e fa risparmiare sulle riparazioni."]},
    sections={
        "en": [("Tyres and brakes", [
            "Check the tyres once a month when they are cold.",
            "Replace the brake pads when they are thinner than {n1} millimetres.",
            "Worn tread is dangerous on wet roads.",
            "Listen for squeaking when braking; it is a sign of wear.",
            "Keep a small pump and a repair kit on board."]),
            ("Servicing", [
                "Keep every receipt in the service booklet.",
                "Use only the oils and fluids recommended by the maker.",
                "Lights and indicators should be checked before long journeys.",
                "The chain or belt needs cleaning after rides in the rain.",
                "An authorised workshop in {town} keeps the original parts."]),
            ("Battery and storage", [
                "Store it in a dry place away from frost.",
                "Do not leave the battery completely flat for long.",
                "Charge it with the original charger only.",
                "In winter, a cover protects the paint and the seat.",
                "Disconnect the battery if you will not use it for {n2} weeks."])],
        "it": [("Pneumatici e freni", [
            "Controllate le gomme una volta al mese, a freddo.",
            "Sostituite le pastiglie quando sono più sottili di {n1} millimetri.",
            "Il battistrada consumato è pericoloso sul bagnato.",
            "Se i freni fischiano, è un segno di usura.",
            "Tenete a bordo una piccola pompa e un kit di riparazione."]),
            ("Tagliandi", [
                "Conservate ogni ricevuta nel libretto dei tagliandi.",
                "Usate solo gli oli e i liquidi consigliati dal costruttore.",
                "Prima dei viaggi lunghi controllate luci e frecce.",
                "Catena o cinghia vanno pulite dopo le uscite sotto la pioggia.",
                "Un'officina autorizzata a {town} tiene i ricambi originali."]),
            ("Batteria e rimessaggio", [
                "Rimessatelo in un luogo asciutto, al riparo dal gelo.",
                "Non lasciate la batteria completamente scarica a lungo.",
                "Caricatela solo con il caricatore originale.",
                "D'inverno un telo protegge vernice e sella.",
                "Scollegate la batteria se non lo usate per {n2} settimane."])]},
    facts=[
        Fact(text={"en": "Inflate the front tyres to [[{v} bar]] and the rear ones a little more.",
                   "it": "Gonfiate le gomme anteriori a [[{v} bar]] e le posteriori un po' di più."},
             named={"en": "How much air goes in the front wheels of the {Name}?",
                    "it": "Quanta aria va messa davanti sul {Name}?"},
             described={"en": "What pressure is right for the front of the {para}?",
                        "it": "Che pressione serve davanti per {para}?"},
             section=0, values=lambda rng, lang: {"v": f"{rng.randint(1, 6)}{'.' if lang == 'en' else ','}"
                                                       f"{rng.randint(0, 9)}"}),
        Fact(text={"en": "Have it serviced every [[{v} kilometres]] or once a year.",
                   "it": "Fate il tagliando ogni [[{v} chilometri]] o una volta l'anno."},
             named={"en": "After what distance is the {Name} due for a check-up?",
                    "it": "Dopo quanta strada bisogna portare {Name} in officina?"},
             described={"en": "How far can I ride or drive the {para} between inspections?",
                        "it": "Quanta strada si può fare con {para} tra un controllo e l'altro?"},
             section=1, values=lambda rng, lang: {"v": f"{rng.randrange(1000, 40000, 500):,}".replace(
                 ",", "," if lang == "en" else ".")}),
        Fact(text={"en": "From empty, the battery charges fully in [[{v} hours]].",
                   "it": "Da scarica, la batteria si ricarica del tutto in [[{v} ore]]."},
             named={"en": "How long does a complete recharge of the {Name} take?",
                    "it": "Quanto ci mette {Name} a fare il pieno di energia?"},
             described={"en": "How much time does the {para} need to be ready to go again when flat?",
                        "it": "Dopo quanto è di nuovo pronto all'uso {para} se era a terra?"},
             section=2, values=_n(2, 14)),
    ],
    subjects=[
        Subject("city car", "small hatchback for town", "l'utilitaria", "la piccola auto da città"),
        Subject("mountain bike", "bicycle for rough trails", "la mountain bike",
                "la bicicletta per i sentieri sterrati"),
        Subject("electric scooter", "stand-up e-scooter for commuting", "il monopattino elettrico",
                "il mezzo a batteria su cui si sta in piedi"),
        Subject("motorbike", "two-wheeler with an engine", "la moto", "la due ruote a motore"),
        Subject("delivery van", "light commercial vehicle", "il furgone", "il mezzo commerciale leggero"),
        Subject("motorhome", "house on wheels", "l'autocaravan", "la casa viaggiante"),
        Subject("road bike", "racing bicycle with thin tyres", "la bici da corsa",
                "la bicicletta sportiva con le gomme sottili"),
        Subject("e-bike", "pedal-assisted bicycle", "la bici a pedalata assistita",
                "la bicicletta con il motorino che aiuta a pedalare"),
        Subject("estate car", "family car with a big boot", "la station wagon",
                "l'auto familiare col bagagliaio grande"),
        Subject("compact tractor", "small farm machine", "il trattorino", "la piccola macchina agricola"),
        Subject("moped", "low-powered scooter for teenagers", "il motorino", "lo scooter per ragazzi"),
        Subject("cargo bike", "bicycle with a box for shopping or children", "la bici cargo",
                "la bicicletta con il cassone per spesa o bambini"),
        Subject("pickup truck", "truck with an open load bed", "il pick-up",
                "il fuoristrada col cassone aperto"),
        Subject("hybrid saloon", "sedan with petrol and electric motors", "la berlina ibrida",
                "l'auto a tre volumi con motore a benzina ed elettrico"),
        Subject("electric wheelchair", "powered chair for people who cannot walk", "la carrozzina elettrica",
                "la sedia a motore per chi non cammina"),
    ],
    name=lambda names, rng, lang: f"{names.word()} {rng.randint(1, 9)}{rng.choice(['00', '50', '25'])}",
)

PETS = Kind(
    key={"en": "pet", "it": "animale"},
    title={"en": "Looking after {Name} the {subject}", "it": "Come accudire {Name} ({subject_bare})"},
    intro={"en": ["Instructions for the neighbours who look after {Name} while we are away.",
                  "Thank you for your help; the spare key is under the flower pot."],
           "it": ["Istruzioni per i vicini che si occupano di {Name} mentre siamo via.",
                  "Grazie dell'aiuto; la chiave di riserva è sotto il vaso dei fiori."]},
    sections={
        "en": [("Food and water", [
            "Fresh water every morning, in the blue bowl.",
            "Treats are in the top drawer, but no more than {n1} a day.",
            "Never give chocolate, onions or grapes.",
            "Wash the bowls with hot water, no soap.",
            "If the food runs out, the pet shop in {town} has the same brand."]),
            ("Health", [
                "The vet's number is on the fridge door.",
                "Watch for sneezing, a dull coat or not eating.",
                "Medicines are in the bathroom cabinet, clearly labelled.",
                "The insurance papers are in the kitchen drawer.",
                "Weigh the animal on Sundays and write it in the notebook."]),
            ("Habits", [
                "Likes to be brushed in the evening.",
                "Sleeps in the basket near the radiator.",
                "Gets bored when left alone for more than {n2} hours.",
                "Plays happily with the old tennis ball.",
                "Please keep the windows closed on the first floor."])],
        "it": [("Cibo e acqua", [
            "Acqua fresca ogni mattina, nella ciotola blu.",
            "I premietti sono nel primo cassetto, ma non più di {n1} al giorno.",
            "Mai dare cioccolato, cipolla o uva.",
            "Lavare le ciotole con acqua calda, senza sapone.",
            "Se finisce il cibo, il negozio di animali di {town} ha la stessa marca."]),
            ("Salute", [
                "Il numero del veterinario è sulla porta del frigo.",
                "Fate attenzione a starnuti, pelo opaco o inappetenza.",
                "Le medicine sono nell'armadietto del bagno, con l'etichetta.",
                "I documenti dell'assicurazione sono nel cassetto della cucina.",
                "Pesatelo la domenica e scrivete il peso sul quaderno."]),
            ("Abitudini", [
                "Gli piace essere spazzolato la sera.",
                "Dorme nella cesta vicino al termosifone.",
                "Si annoia se resta solo più di {n2} ore.",
                "Gioca volentieri con la vecchia pallina da tennis.",
                "Tenete chiuse le finestre del primo piano."])]},
    facts=[
        Fact(text={"en": "{Name} eats [[{v} grams of food a day]], split into two meals.",
                   "it": "{Name} mangia [[{v} grammi di cibo al giorno]], divisi in due pasti."},
             named={"en": "What portion does {Name} get every day?",
                    "it": "Che razione spetta a {Name} quotidianamente?"},
             described={"en": "How much should our {para} be given to eat each day?",
                        "it": "Quanto deve mangiare {para} in una giornata?"},
             section=0, values=lambda rng, lang: {"v": str(rng.randrange(10, 900, 5))}),
        Fact(text={"en": "The next vaccination is booked for [[{v}]] at the clinic.",
                   "it": "Il prossimo vaccino è fissato per il [[{v}]] in ambulatorio."},
             named={"en": "When is {Name}'s next jab?",
                    "it": "Quando tocca a {Name} la prossima iniezione?"},
             described={"en": "When does the {para} go back to the animal doctor for shots?",
                        "it": "Quando torna dal dottore degli animali {para} per la puntura?"},
             section=1, values=lambda rng, lang: {"v": _date(rng, lang)}),
        Fact(text={"en": "{Name} is frightened of [[{extra}]], so stay close when it happens.",
                   "it": "{Name} ha paura [[{extra}]], quindi stategli vicino quando succede."},
             named={"en": "What scares {Name}?",
                    "it": "Che cosa spaventa {Name}?"},
             described={"en": "What makes our {para} panic?",
                        "it": "Cosa mette in agitazione {para}?"},
             section=2, values=lambda rng, lang: {}),
    ],
    subjects=[
        Subject("dog", "four-legged friend who barks", "il cane", "l'amico a quattro zampe che abbaia",
                ("thunderstorms", "dei temporali")),
        Subject("cat", "purring feline", "il gatto", "il felino che fa le fusa",
                ("the hoover", "dell'aspirapolvere")),
        Subject("rabbit", "bunny with long ears", "il coniglio", "la bestiola dalle lunghe orecchie",
                ("the doorbell", "del campanello")),
        Subject("parrot", "colourful talking bird", "il pappagallo", "l'uccello colorato che parla",
                ("open umbrellas", "degli ombrelli aperti")),
        Subject("goldfish", "little orange swimmer in a bowl", "il pesce rosso",
                "il piccolo nuotatore arancione nella boccia", ("sudden shadows over the tank", "delle ombre "
                                                                "improvvise sulla vasca")),
        Subject("tortoise", "slow reptile with a shell", "la tartaruga", "il rettile lento col guscio",
                ("the lawn mower", "del tosaerba")),
        Subject("hamster", "tiny rodent on a wheel", "il criceto", "il roditore minuscolo che corre sulla ruota",
                ("the washing machine spinning", "della centrifuga della lavatrice")),
        Subject("guinea pig", "squeaking cavy", "il porcellino d'India", "la cavia che squittisce",
                ("balloons", "dei palloncini")),
        Subject("pony", "small horse in the paddock", "il pony", "il cavallino del recinto",
                ("plastic bags flapping", "dei sacchetti di plastica che sventolano")),
        Subject("canary", "yellow songbird in a cage", "il canarino", "l'uccellino giallo che canta in gabbia",
                ("the neighbour's cat", "del gatto dei vicini")),
        Subject("ferret", "playful weasel-like pet", "il furetto", "la bestiola simile alla donnola",
                ("the hairdryer", "del phon")),
        Subject("bearded dragon", "desert lizard under a heat lamp", "il pogona",
                "la lucertola del deserto sotto la lampada", ("fireworks", "dei fuochi d'artificio")),
        Subject("hens", "egg-laying birds in the coop", "le galline", "gli uccelli da cortile che fanno le uova",
                ("the fox at night", "della volpe di notte")),
        Subject("goat", "bearded farm animal that climbs", "la capra",
                "l'animale da cortile con la barba che si arrampica", ("tractors", "dei trattori")),
        Subject("budgie", "small blue parakeet", "il pappagallino", "il piccolo uccellino azzurro",
                ("the kettle whistling", "del fischio del bollitore")),
    ],
    name=lambda names, rng, lang: names.word((2,)),
)

GARDEN = Kind(
    key={"en": "garden", "it": "giardino"},
    title={"en": "Growing notes: {subject} '{Name}'", "it": "Note di coltivazione: {subject_bare} '{Name}'"},
    intro={"en": ["Notes from the allotment on growing the '{Name}' variety of {subject}.",
                  "They follow three seasons of trial and error."],
           "it": ["Appunti dall'orto sulla coltivazione della varietà '{Name}'.",
                  "Sono il frutto di tre stagioni di prove ed errori."]},
    sections={
        "en": [("Planting", [
            "Choose a spot sheltered from the north wind.",
            "Dig in well-rotted compost a few weeks before planting.",
            "Space plants about {n1} centimetres apart.",
            "Young plants should be hardened off for a week outdoors.",
            "A layer of mulch keeps the soil moist and the weeds down."]),
            ("Care through the year", [
                "Feed with a liquid fertiliser once a fortnight in summer.",
                "Remove yellow leaves as soon as they appear.",
                "Tie the stems loosely to a cane as they grow.",
                "Protect from slugs with crushed eggshells.",
                "In hot spells, shade during the middle of the day."]),
            ("Problems and harvest", [
                "Aphids can be washed off with a jet of water.",
                "Too much nitrogen gives leaves and few flowers.",
                "Harvest in the morning when it is cool.",
                "The seed bank in {town} swaps varieties every spring.",
                "Keep a note of what worked for next year."])],
        "it": [("Messa a dimora", [
            "Scegliete un punto riparato dalla tramontana.",
            "Interrate del compost maturo qualche settimana prima.",
            "Distanziate le piante di circa {n1} centimetri.",
            "Le piantine vanno abituate all'aperto per una settimana.",
            "Uno strato di pacciamatura tiene il terreno umido e limita le erbacce."]),
            ("Cure durante l'anno", [
                "Concimate con un fertilizzante liquido ogni quindici giorni d'estate.",
                "Togliete le foglie gialle appena compaiono.",
                "Legate i fusti a una canna senza stringere mentre crescono.",
                "Proteggete dalle lumache con gusci d'uovo tritati.",
                "Nei periodi caldi fate ombra nelle ore centrali."]),
            ("Problemi e raccolto", [
                "Gli afidi si tolgono con un getto d'acqua.",
                "Troppo azoto dà molte foglie e pochi fiori.",
                "Raccogliete al mattino, col fresco.",
                "La banca dei semi di {town} scambia varietà ogni primavera.",
                "Annotate cosa ha funzionato per l'anno dopo."])]},
    facts=[
        Fact(text={"en": "In summer give it water [[every {v} days]], at the base and never on the leaves.",
                   "it": "D'estate va bagnata [[ogni {v} giorni]], alla base e mai sulle foglie."},
             named={"en": "How often does '{Name}' need a drink in the warm months?",
                    "it": "Ogni quanto bisogna dare da bere a '{Name}' nei mesi caldi?"},
             described={"en": "How frequently should I irrigate my {para} when it is hot?",
                        "it": "Con che frequenza si innaffia {para} quando fa caldo?"},
             section=1, values=_n(2, 9)),
        Fact(text={"en": "Prune it back hard in [[{v}]], before the new shoots appear.",
                   "it": "Si pota con decisione a [[{v}]], prima che spuntino i nuovi germogli."},
             named={"en": "In which month should '{Name}' be cut back?",
                    "it": "In che mese si accorcia '{Name}'?"},
             described={"en": "When is the right time to trim my {para}?",
                        "it": "Qual è il periodo giusto per sfoltire {para}?"},
             section=1, values=lambda rng, lang: {"v": rng.choice(MONTHS[lang])}),
        Fact(text={"en": "It needs at least [[{v} hours of direct sun]] a day to do well.",
                   "it": "Ha bisogno di almeno [[{v} ore di sole diretto]] al giorno per crescere bene."},
             named={"en": "How much sunshine does '{Name}' require?",
                    "it": "Quanta luce del sole chiede '{Name}'?"},
             described={"en": "How long should the {para} stand in bright light each day?",
                        "it": "Per quanto tempo deve stare alla luce piena ogni giorno {para}?"},
             section=0, values=_n(3, 10)),
    ],
    subjects=[
        Subject("tomatoes", "red fruit grown for salads and sauce", "il pomodoro",
                "l'ortaggio rosso per insalate e sughi"),
        Subject("roses", "thorny flowering shrub", "la rosa", "l'arbusto fiorito con le spine"),
        Subject("basil", "fragrant herb for pesto", "il basilico", "l'erba profumata del pesto"),
        Subject("lemon tree", "citrus tree in a pot", "il limone", "l'agrume in vaso"),
        Subject("orchid", "exotic flower on the windowsill", "l'orchidea", "il fiore esotico sul davanzale"),
        Subject("lavender", "purple scented bush that bees love", "la lavanda",
                "il cespuglio viola e profumato che piace alle api"),
        Subject("strawberries", "small red berries in beds", "la fragola", "le piccole bacche rosse nelle aiuole"),
        Subject("olive tree", "silver-leaved tree that gives oil", "l'olivo",
                "l'albero dalle foglie argentate che dà l'olio"),
        Subject("hydrangea", "shrub with big blue or pink flower heads", "l'ortensia",
                "l'arbusto dai grandi fiori azzurri o rosa"),
        Subject("courgettes", "green summer squash", "la zucchina", "l'ortaggio verde estivo simile al cetriolo"),
        Subject("fig tree", "tree with sweet purple fruit and big leaves", "il fico",
                "l'albero dai frutti dolci e viola e dalle foglie grandi"),
        Subject("tulips", "spring bulbs with cup-shaped flowers", "il tulipano",
                "i bulbi primaverili con i fiori a coppa"),
        Subject("rosemary", "woody herb for roasts", "il rosmarino", "l'erba aromatica legnosa per gli arrosti"),
        Subject("cactus", "spiny desert plant", "il cactus", "la pianta spinosa del deserto"),
        Subject("chilli peppers", "hot little peppers", "il peperoncino", "i piccoli frutti piccanti"),
    ],
    name=lambda names, rng, lang: names.word(),
)

KINDS: list[Kind] = [APPLIANCES, RECIPES, TRAVEL, RENTALS, MEDICINES, SCHOOL, CLUBS, VEHICLES, PETS, GARDEN]


# the set --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Question:
    text: str
    language: Lang
    document: str
    """The file name of the document that answers it."""
    answer: str
    """A substring of the planted fact, once in that document."""
    kind: str
    """"named" (carries the document's rare name) or "described" (a paraphrase only)."""
    topic: str
    heading: str
    """The heading of the section the fact is in ("" for the opening lines)."""
    page: int | None = None
    """For a PDF, the page the fact is on."""


@dataclass(slots=True)
class SetDocument:
    name: str
    language: Lang
    topic: str
    title: str
    sections: list[tuple[str, list[list[str]]]]
    """Headings, each with paragraphs of sentences (the planted facts among them, unmarked)."""
    questions: list[Question] = field(default_factory=list)

    def text(self) -> str:
        """All of the document's words (for vocabularies and checks)."""
        return "\n".join([self.title] + [h + "\n" + "\n".join(" ".join(p) for p in ps) for h, ps in self.sections])


@dataclass(slots=True)
class LabelledSet:
    documents: list[SetDocument]
    files: list[Path]

    @property
    def questions(self) -> list[Question]:
        return [q for d in self.documents for q in d.questions]


def _fill(template: str, slots: Slots) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: slots.get(m.group(1), m.group(0)), template)


def _bare(subject_it: str) -> str:
    """An Italian subject without its article, for titles: "la lavastoviglie" -> "lavastoviglie"."""
    return re.sub(r"^(il|lo|la|i|gli|le|l')\s?", "", subject_it)


def _document(kind: Kind, subject: Subject, lang: Lang, rng: random.Random, names: Names, index: int) -> SetDocument:
    name = kind.name(names, rng, lang)
    subject_text = subject.en if lang == "en" else subject.it
    slots: Slots = {"Name": name, "subject": subject_text, "subject_bare": _bare(subject.it),
                    "Subject": subject_text[:1].upper() + subject_text[1:],
                    "para": subject.en_para if lang == "en" else subject.it_para,
                    "extra": subject.extra[0 if lang == "en" else 1],
                    "person": _person(rng, lang, names), "town": rng.choice(TOWNS[lang]),
                    "n1": str(rng.randint(3, 40)), "n2": str(rng.randint(2, 12)), "n3": str(rng.randint(5, 15))}
    title = _fill(kind.title[lang], slots)
    title = title[:1].upper() + title[1:]
    facts: dict[int, list[str]] = {}
    answers: list[str] = []
    for fact in kind.facts:
        values = {**slots, **fact.values(rng, lang)}
        sentence = _fill(fact.text[lang], values)
        answers.append(re.search(r"\[\[(.+?)\]\]", sentence).group(1))  # type: ignore[union-attr]
        facts.setdefault(fact.section, []).append(sentence.replace("[[", "").replace("]]", ""))
    sections: list[tuple[str, list[list[str]]]] = [("", [[_fill(s, slots) for s in kind.intro[lang]]])]
    for i, (heading, pool) in enumerate(kind.sections[lang]):
        picked = rng.sample(pool, rng.randint(3, len(pool)))
        sentences = [_fill(s, slots) for s in picked]
        for planted in facts.get(i, []):
            sentences.insert(rng.randint(0, len(sentences)), planted)
        paragraphs, at = [], 0
        while at < len(sentences):
            step = rng.randint(2, 3)
            paragraphs.append(sentences[at:at + step])
            at += step
        sections.append((heading, paragraphs))
    for heading, pool in GENERIC[lang]:  # some documents are longer: notes and contacts after the rest
        if rng.random() < 0.35:
            sections.append((heading, [[_fill(s, slots) for s in rng.sample(pool, rng.randint(3, len(pool)))]]))
    slug = re.sub(r"[^a-z0-9]+", "-", f"{kind.key[lang]} {_bare(subject_text)} {name}".lower()).strip("-")
    document = SetDocument(name=f"{index:03d}-{slug}", language=lang, topic=kind.key["en"], title=title,
                           sections=sections)
    # one question, two for a third of the documents; named and described in turn
    asked = rng.sample(range(len(kind.facts)), 2 if rng.random() < 0.34 else 1)
    for j, f in enumerate(asked):
        fact = kind.facts[f]
        style = "named" if (index + j) % 2 == 0 else "described"
        template = fact.named[lang] if style == "named" else fact.described[lang]
        text = _fill(template, slots)
        document.questions.append(Question(text=text[:1].upper() + text[1:], language=lang, document="",
                                           answer=answers[f], kind=style, topic=kind.key["en"],
                                           heading=kind.sections[lang][fact.section][0]))
    return document


def build(seed: int = SEED) -> list[SetDocument]:
    """The documents and their questions, without files (names have no extension yet)."""
    rng = random.Random(seed)
    names = Names(rng)
    documents: list[SetDocument] = []
    for lang in ("en", "it"):
        for kind in KINDS:
            for subject in kind.subjects:
                documents.append(_document(kind, subject, lang, rng, names, len(documents)))
    for document in documents:
        text = document.text()
        for q in document.questions:
            if text.count(q.answer) != 1:
                raise AssertionError(f"{document.name}: {q.answer!r} is there {text.count(q.answer)} times")
    return documents


# files ----------------------------------------------------------------------------------------------

def _markdown(d: SetDocument) -> str:
    out = [f"# {d.title}", ""]
    for heading, paragraphs in d.sections:
        if heading:
            out += [f"## {heading}", ""]
        out += [" ".join(p) + "\n" for p in paragraphs]
    return "\n".join(out)


def _plain(d: SetDocument) -> str:
    out = [d.title.upper(), ""]
    for heading, paragraphs in d.sections:
        if heading:
            out += [heading, "-" * len(heading), ""]
        out += [" ".join(p) + "\n" for p in paragraphs]
    return "\n".join(out)


def _html(d: SetDocument) -> str:
    e = html.escape
    body = [f"<h1>{e(d.title)}</h1>"]
    for heading, paragraphs in d.sections:
        if heading:
            body.append(f"<h2>{e(heading)}</h2>")
        body += [f"<p>{e(' '.join(p))}</p>" for p in paragraphs]
    lang = d.language
    return (f"<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{e(d.title)}</title>"
            f"<style>body {{ font-family: serif; }}</style></head>\n<body>\n<nav><a href=\"/\">Home</a></nav>\n<main>\n"
            + "\n".join(body) + "\n</main>\n<footer>© 2026</footer>\n</body></html>\n")


def _csv(d: SetDocument) -> str:
    """A table of notes: one row per sentence, with its section."""
    def cell(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n') else value
    header = "section,note" if d.language == "en" else "sezione,nota"
    rows = [header]
    for heading, paragraphs in d.sections:
        for sentence in (s for p in paragraphs for s in p):
            rows.append(f"{cell(heading or d.title)},{cell(sentence)}")
    return "\r\n".join(rows) + "\r\n"


def _docx(d: SetDocument) -> bytes:
    items: list[tuple[str, str] | list[list[str]]] = [("Heading1", d.title)]
    for heading, paragraphs in d.sections:
        if heading:
            items.append(("Heading2", heading))
        items += [("", " ".join(p)) for p in paragraphs]
    return docx_bytes(items, title=d.title)


def _pdf_pages(d: SetDocument, answers: Sequence[str]) -> tuple[list[list[str]], dict[str, int]]:
    """Lines of text per page (the sections spread over two or three pages, lines wrapped at 90
    characters without breaking an answer), and the page each answer is on."""
    keep = {a: a.replace(" ", "\u00a0") for a in answers}
    pages: list[list[str]] = [[d.title, ""]]
    per_page = max(1, (len(d.sections) + 2) // 3)
    for i, (heading, paragraphs) in enumerate(d.sections):
        if i and i % per_page == 0:
            pages.append([])
        if heading:
            pages[-1] += [heading, ""]
        for p in paragraphs:
            text = " ".join(p)
            for answer, glued in keep.items():
                text = text.replace(answer, glued)
            line = ""
            for word in text.split(" "):
                if line and len(line) + 1 + len(word) > 90:
                    pages[-1].append(line)
                    line = word
                else:
                    line = f"{line} {word}" if line else word
            pages[-1] += [line, ""]
    where: dict[str, int] = {}
    for number, lines in enumerate(pages, 1):
        for j, line in enumerate(lines):
            restored = line.replace("\u00a0", " ")
            lines[j] = restored
            for answer in answers:
                if answer in restored:
                    where.setdefault(answer, number)
    return pages, where


def _format(index: int) -> str:
    return {3: ".html", 7: ".txt", 11: ".pdf", 15: ".csv", 17: ".txt", 19: ".docx"}.get(index % 20, ".md")


def write_set(folder: Path, *, seed: int = SEED, limit: int | None = None) -> LabelledSet:
    """Write the documents into `folder` (made if needed) and return them with their questions;
    `limit` keeps only the first documents of each language (for a quick run)."""
    folder.mkdir(parents=True, exist_ok=True)
    documents = build(seed)
    if limit is not None:
        documents = [d for lang in ("en", "it") for d in [x for x in documents if x.language == lang][:limit]]
    files: list[Path] = []
    for i, d in enumerate(documents):
        suffix = _format(i)
        d.name += suffix
        answers = [q.answer for q in d.questions]
        pages: dict[str, int] = {}
        path = folder / d.name
        if suffix == ".pdf":
            lines, pages = _pdf_pages(d, answers)
            path.write_bytes(pdf_bytes(lines))
        elif suffix == ".html":
            path.write_text(_html(d), encoding="utf-8")
        elif suffix == ".docx":
            path.write_bytes(_docx(d))
        elif suffix == ".csv":
            path.write_text(_csv(d), encoding="utf-8", newline="")
        elif suffix == ".txt":
            path.write_text(_plain(d), encoding="utf-8")
        else:
            path.write_text(_markdown(d), encoding="utf-8")
        d.questions = [Question(text=q.text, language=q.language, document=d.name, answer=q.answer, kind=q.kind,
                                topic=q.topic, heading=q.heading, page=pages.get(q.answer)) for q in d.questions]
        files.append(path)
    return LabelledSet(documents=documents, files=files)


# scoring --------------------------------------------------------------------------------------------

def _squeeze(text: str) -> str:
    return " ".join(text.split())


def answered(question: Question, hits: Iterable[tuple[str, str]]) -> bool:
    """Whether one of the hits, (document name, passage text), is a passage of the question's
    document that holds its answer (white space, as extraction may change it, aside)."""
    answer = _squeeze(question.answer)
    return any(name == question.document and answer in _squeeze(text) for name, text in hits)


def vocabulary(documents: Sequence[SetDocument]) -> Counter[str]:
    """How often each word occurs in the set (for synthetic passages with a realistic spread)."""
    counts: Counter[str] = Counter()
    for d in documents:
        counts.update(re.findall(r"\w+", d.text().lower()))
    return counts
