"""Build spanqa's own sample question set, engine/sample_data/questions.jsonl, from the text written below.

Every paragraph and question here was written for spanqa (no SQuAD or Wikipedia text), and is released with the
project under its Apache-2.0 license. Edit the data in this file, never the JSONL, then rebuild:

    python tools/build_sample.py            # rewrite engine/sample_data/questions.jsonl
    python tools/build_sample.py --check    # exit 1 if the committed file differs from what this source builds

Answers are written as text, not offsets: the builder finds each one in its paragraph and computes `answer_start`,
so offsets can never drift when a paragraph is edited. An answer that occurs more than once must say which
occurrence the question is about (`nth`, counted from 1); one that is missing, ambiguous or cut from the middle of a
word stops the build with an error naming the paragraph and question. The output depends only on this file, so
rebuilding it is byte-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

OUTPUT_PATH = Path(__file__).resolve().parent.parent / "engine" / "sample_data" / "questions.jsonl"


class SampleSourceError(ValueError):
    """The source data below is inconsistent; the message names the paragraph and the question."""


@dataclass(frozen=True)
class Q:
    """One question. `answer` must occur in the paragraph; `nth` picks the occurrence (1-based) when it occurs more
    than once. `also` lists other acceptable spellings of the same answer (each must occur exactly once), which the
    SQuAD metric credits like the several answers of a SQuAD dev question."""

    question: str
    answer: str
    nth: int | None = None
    also: tuple[str, ...] = ()


@dataclass(frozen=True)
class Paragraph:
    title: str
    text: str
    questions: tuple[Q, ...]

    @property
    def context(self) -> str:
        # The source wraps paragraphs freely across lines; collapsing whitespace keeps the context independent of
        # how the literal happens to be wrapped.
        return " ".join(self.text.split())


def P(title: str, text: str, *questions: Q) -> Paragraph:
    return Paragraph(title, text, questions)


def locate_answer(context: str, answer: str, nth: int | None, where: str) -> int:
    """The character offset of the chosen occurrence of `answer` in `context`."""
    if not answer or answer != answer.strip():
        raise SampleSourceError(f"{where}: answer {answer!r} is empty or has surrounding whitespace")
    starts, position = [], context.find(answer)
    while position >= 0:
        starts.append(position)
        position = context.find(answer, position + 1)
    if not starts:
        raise SampleSourceError(f"{where}: answer {answer!r} does not occur in the paragraph")
    if nth is None:
        if len(starts) > 1:
            raise SampleSourceError(
                f"{where}: answer {answer!r} occurs {len(starts)} times (at {starts}); say which with nth="
            )
        nth = 1
    if not 1 <= nth <= len(starts):
        raise SampleSourceError(f"{where}: nth={nth}, but answer {answer!r} occurs {len(starts)} time(s)")
    start = starts[nth - 1]
    end = start + len(answer)
    # A span that starts or ends inside a word ("ten" in "often") is almost always a mistake in the source.
    if (start > 0 and context[start - 1].isalnum() and answer[0].isalnum()) or (
        end < len(context) and context[end].isalnum() and answer[-1].isalnum()
    ):
        raise SampleSourceError(f"{where}: answer {answer!r} at offset {start} cuts a word in the paragraph")
    return start


def build_records(paragraphs: Sequence[Paragraph]) -> list[dict]:
    """One JSON-ready record per question, ids `s{paragraph:03}-q{question}` in source order."""
    records: list[dict] = []
    for p, paragraph in enumerate(paragraphs, start=1):
        context = paragraph.context
        if not paragraph.questions:
            raise SampleSourceError(f"paragraph {p} ({paragraph.title!r}): has no questions")
        for q, item in enumerate(paragraph.questions, start=1):
            where = f"paragraph {p} ({paragraph.title!r}) question {q} ({item.question!r})"
            if not item.question.endswith("?"):
                raise SampleSourceError(f"{where}: a question must end with '?'")
            texts = [item.answer, *item.also]
            starts = [locate_answer(context, item.answer, item.nth, where)]
            starts += [locate_answer(context, alternative, None, where) for alternative in item.also]
            records.append(
                {
                    "id": f"s{p:03d}-q{q}",
                    "title": paragraph.title,
                    "question": item.question,
                    "context": context,
                    "answers": {"text": texts, "answer_start": starts},
                }
            )
    return records


def render_jsonl(records: Sequence[dict]) -> str:
    """One object per line, keys in a fixed order, UTF-8 text kept readable (no \\u escapes)."""
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def build_sample_text() -> str:
    """The exact text of engine/sample_data/questions.jsonl."""
    return render_jsonl(build_records(PARAGRAPHS))


def write_sample(path: Path = OUTPUT_PATH) -> Path:
    """Build, then replace `path` atomically, so a failed build never leaves a half-written file behind."""
    text = build_sample_text()  # raises before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as output:
            output.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build engine/sample_data/questions.jsonl from this file's text.")
    parser.add_argument("--output", type=Path, default=OUTPUT_PATH, help=f"where to write (default: {OUTPUT_PATH})")
    parser.add_argument("--check", action="store_true", help="only compare with --output; exit 1 if it differs")
    arguments = parser.parse_args(argv)
    try:
        if arguments.check:
            expected = build_sample_text().encode("utf-8")
            current = arguments.output.read_bytes() if arguments.output.is_file() else None
            if current != expected:
                print(f"build_sample: {arguments.output} is out of date; run tools/build_sample.py", file=sys.stderr)
                return 1
            print(f"build_sample: {arguments.output} is up to date")
            return 0
        path = write_sample(arguments.output)
    except (SampleSourceError, OSError) as error:
        print(f"build_sample: error: {error}", file=sys.stderr)
        return 2
    questions = sum(len(paragraph.questions) for paragraph in PARAGRAPHS)
    print(f"build_sample: wrote {questions} questions on {len(PARAGRAPHS)} paragraphs to {path}")
    return 0


# The data. Keep paragraphs in a stable order: ids are derived from positions.
PARAGRAPHS: tuple[Paragraph, ...] = (
    P(
        "Photosynthesis",
        """Photosynthesis is the process by which green plants, algae and some bacteria turn light into chemical
        energy. Inside the leaf, a pigment called chlorophyll absorbs mostly red and blue light and reflects green,
        which is why most leaves look green. The plant takes in carbon dioxide through tiny pores called stomata and
        draws water up from its roots. Using the energy of sunlight, it combines the two to make glucose, a simple
        sugar that feeds its growth. Oxygen is released as a by-product, and nearly all of the oxygen in the air we
        breathe was produced this way.""",
        Q("Which pigment absorbs light inside a leaf?", "chlorophyll"),
        Q("Through what tiny pores does a plant take in carbon dioxide?", "stomata"),
        Q("What sugar does a plant make during photosynthesis?", "glucose"),
    ),
    P(
        "Water cycle",
        """The water cycle describes how water moves between the oceans, the air and the land. Heat from the Sun
        causes water to evaporate from seas, lakes and rivers, and plants release more moisture from their leaves in
        a process called transpiration. As the warm, moist air rises it cools, and the vapour condenses into tiny
        droplets that form clouds. When the droplets grow heavy enough they fall as rain, snow or hail, which
        together are known as precipitation. Some of this water soaks into the ground and becomes groundwater, while
        the rest runs off into streams and eventually returns to the sea.""",
        Q("What is the release of moisture from plant leaves called?", "transpiration"),
        Q("What do the droplets form when water vapour condenses?", "clouds"),
        Q("What are rain, snow and hail together known as?", "precipitation"),
    ),
    P(
        "Mount Everest",
        """Mount Everest, on the border between Nepal and the Tibet Autonomous Region of China, is the highest
        mountain above sea level. A joint survey by the two countries, announced in 2020, put its height at
        8,848.86 metres. In Nepal the peak is called Sagarmatha, and in Tibetan it is known as Chomolungma. The first
        confirmed ascent was made on 29 May 1953 by Edmund Hillary, a beekeeper from New Zealand, and Tenzing Norgay,
        a Sherpa mountaineer. Most climbers today attempt the summit in May, when a short break in the high-altitude
        winds gives them a few days of calmer weather.""",
        Q("How high is Mount Everest according to the survey announced in 2020?", "8,848.86 metres"),
        Q("What is Mount Everest called in Nepal?", "Sagarmatha"),
        Q("On what date was Everest first climbed?", "29 May 1953"),
    ),
    P(
        "Danube",
        """The Danube is the second-longest river in Europe after the Volga. It rises in the Black Forest of
        southwestern Germany and flows roughly 2,850 kilometres east and south before emptying into the Black Sea
        through a wide delta in Romania and Ukraine. Along the way it passes through or borders ten countries, more
        than any other river in the world, and four national capitals stand on its banks: Vienna, Bratislava,
        Budapest and Belgrade. For centuries the river has been a major trade route, and today barges carry grain,
        ore and fuel along much of its length.""",
        Q("Where does the Danube rise?", "the Black Forest of southwestern Germany", also=("Black Forest",)),
        Q("How many countries does the Danube pass through or border?", "ten"),
        Q("Into which sea does the Danube flow?", "Black Sea"),
    ),
    P(
        "Printing press",
        """Johannes Gutenberg, a goldsmith from the German city of Mainz, developed a printing press with movable
        metal type around 1440. Before this, most books in Europe were copied out by hand. Gutenberg cast individual
        letters in a metal alloy so that they could be arranged into pages, inked, printed and then reused, and he
        devised an oil-based ink that clung well to metal. His most famous work, a Latin Bible completed in about
        1455, survives today in fewer than fifty copies. By the end of the century printing shops had opened in more
        than two hundred European towns, and books had become far cheaper to produce.""",
        Q("Which city was Johannes Gutenberg from?", "Mainz"),
        Q("Around what year did Gutenberg develop his printing press?", "1440"),
        Q("What kind of ink did Gutenberg devise?", "oil-based", also=("oil-based ink",)),
    ),
    P(
        "Honeybee colonies",
        """A honeybee colony is built around a single queen, whose main task is to lay eggs, sometimes more than a
        thousand a day in summer. Nearly all the other bees are female workers, which clean the hive, feed the young,
        build wax comb and gather nectar and pollen. The males, called drones, do no work in the hive; their only
        role is to mate with a queen from another colony. When a worker finds a rich patch of flowers, she returns
        and performs a waggle dance, whose angle and length tell her sisters the direction and distance of the food.
        The Austrian scientist Karl von Frisch worked out the meaning of this dance and shared a Nobel Prize for the
        work in 1973.""",
        Q("What are male honeybees called?", "drones"),
        Q("How does a worker bee tell the others where to find food?", "waggle dance"),
        Q("Who worked out the meaning of the bee dance?", "Karl von Frisch"),
    ),
    P(
        "Café Vérane",
        """Café Vérane is a small coffee house on the Rue des Tanneurs in the old quarter of Lyon. It was opened in
        1962 by Hélène Marchetti, who had trained as a pastry cook in Grenoble before moving to the city. The café
        roasts its own beans in a cast-iron drum behind the counter, and regulars claim they can tell the day of the
        week by the smell of the roast. Its best-known dish is the tarte aux pralines, a pink almond tart that is a
        speciality of the region. In 2015 the business passed to Marchetti's grandson, Étienne, who added a second
        room but kept the original zinc bar.""",
        Q("Who opened Café Vérane?", "Hélène Marchetti"),
        Q("Where did the café's founder train as a pastry cook?", "Grenoble"),
        Q("What is the café's best-known dish?", "tarte aux pralines"),
        Q("Who took over the business in 2015?", "Étienne", also=("Marchetti's grandson, Étienne",)),
    ),
    P(
        "São Paulo",
        """São Paulo is the largest city in Brazil and one of the most populous cities in the Americas. It began as a
        Jesuit mission founded on 25 January 1554 on a plateau above the coastal mountains, and for its first three
        centuries it remained a modest town. Its fortunes changed in the nineteenth century, when coffee grown on the
        surrounding plantations was shipped abroad through the port of Santos and brought great wealth to the region.
        Waves of immigrants from Italy, Portugal, Japan and the Middle East followed, and the city is now home to the
        largest community of Japanese descent outside Japan. People from the city are called paulistanos.""",
        Q("When was São Paulo founded?", "25 January 1554"),
        Q("Through which port was São Paulo's coffee shipped?", "Santos", also=("port of Santos",)),
        Q("What are people from São Paulo called?", "paulistanos"),
    ),
    P(
        "Qingshui Dye Works",
        """The Qingshui Dye Works was founded in 1931 by the chemist Lin Meihua (林美华) in a riverside town in
        Zhejiang province. Lin had studied textile chemistry in Manchester and came home determined to replace
        imported synthetic dyes with colours made from local plants. Her best-known recipe produced a deep blue from
        fermented indigo leaves, which the workshop still sells under the name Qingshui Blue. During the 1950s the
        works became a state cooperative, and in 1998 it was turned into a museum where visitors can watch dyers
        working at the vats.""",
        Q("Who founded the Qingshui Dye Works?", "Lin Meihua"),
        Q("What is Lin Meihua's name in Chinese characters?", "林美华"),
        Q("Where had Lin studied textile chemistry?", "Manchester"),
        Q("In what year did the dye works become a museum?", "1998"),
    ),
    P(
        "Marathon",
        """The marathon is a long-distance running race over 42.195 kilometres, or about 26.2 miles. Its name recalls
        a Greek legend in which a messenger ran from the battlefield of Marathon to Athens to announce a victory over
        the Persians, and then collapsed. A race on this theme was part of the first modern Olympic Games in 1896,
        but its length varied for years afterwards. The distance run at the 1908 London Olympics, which was set so
        that the race could start at Windsor Castle and finish in front of the royal box, was adopted as the
        standard in 1921.""",
        Q("How long is a marathon in kilometres?", "42.195 kilometres", also=("42.195",)),
        Q("Where did the marathon at the 1908 London Olympics start?", "Windsor Castle"),
        Q("When did the 1908 distance become the standard?", "1921"),
    ),
    P(
        "Chess",
        """Chess is a strategy game for two players, played on a board of 64 squares arranged in eight rows and eight
        columns. Each player begins with sixteen pieces: one king, one queen, two rooks, two bishops, two knights and
        eight pawns. The aim is to checkmate the opponent's king, which means attacking it so that it has no legal way
        to escape. The knight is the only piece that can jump over others, moving in an L shape. A special move called
        castling lets a player shift the king two squares towards a rook while the rook hops over to the king's
        other side, all in a single turn.""",
        Q("How many squares does a chess board have?", "64"),
        Q("What is the aim of a game of chess?", "checkmate the opponent's king",
          also=("to checkmate the opponent's king",)),
        Q("Which piece is the only one that can jump over others?", "The knight"),
    ),
    P(
        "Volcanoes",
        """A volcano is an opening in the Earth's crust through which molten rock, gases and ash escape. While the
        molten rock is still underground it is called magma; once it reaches the surface it is called lava.
        Volcanoes with runny, low-silica lava, such as those of Hawaii, tend to build broad, gently sloping shields,
        while sticky, gas-rich magma can erupt explosively and build steep cones. Most of the world's active
        volcanoes lie around the edges of the Pacific Ocean, in a belt known as the Ring of Fire. Scientists who study
        volcanoes are called volcanologists.""",
        # "magma" occurs twice; the question is about the definition, the first occurrence.
        Q("What is molten rock called while it is still underground?", "magma", nth=1),
        Q("What is the belt of volcanoes around the Pacific Ocean known as?", "Ring of Fire"),
        Q("What are scientists who study volcanoes called?", "volcanologists"),
    ),
    P(
        "The Moon",
        """The Moon is Earth's only natural satellite, orbiting at an average distance of about 384,400 kilometres.
        It takes roughly 27.3 days to circle the Earth, and because it turns on its axis in the same time, the same
        side always faces us. The Moon's gravity pulls on the oceans and is the main cause of the tides. On 20 July
        1969 the Apollo 11 lunar module landed in the Sea of Tranquility, and Neil Armstrong became the first person
        to walk on the lunar surface. Twelve astronauts in all walked on the Moon between 1969 and 1972.""",
        Q("What is the average distance between the Earth and the Moon?", "384,400 kilometres",
          also=("about 384,400 kilometres",)),
        Q("Where did the Apollo 11 lunar module land?", "Sea of Tranquility"),
        Q("How many astronauts have walked on the Moon?", "Twelve"),
    ),
    P(
        "DNA",
        """Deoxyribonucleic acid, or DNA, is the molecule that carries the genetic instructions of nearly all living
        things. It is made of two long strands wound around each other in a shape called a double helix. Each strand
        is a chain of units carrying one of four chemical bases, adenine, thymine, guanine and cytosine, which pair
        up across the helix: adenine always with thymine, and guanine with cytosine. The structure was described in
        1953 by James Watson and Francis Crick, whose model relied heavily on X-ray images made by Rosalind Franklin
        at King's College London.""",
        Q("What shape do the two strands of DNA form?", "double helix"),
        # "cytosine" occurs twice; the question is about the pairing rule, the second occurrence.
        Q("Which base pairs with guanine?", "cytosine", nth=2),
        Q("Whose X-ray images did Watson and Crick rely on?", "Rosalind Franklin"),
    ),
    P(
        "Piano",
        """The piano was invented in Florence around 1700 by Bartolomeo Cristofori, who looked after the musical
        instruments of the Medici family. Unlike the harpsichord, whose strings are plucked, the piano strikes its
        strings with small hammers, so a player can make notes louder or softer by changing how hard the keys are
        pressed. This is the origin of its full name, pianoforte, from the Italian words for soft and loud. A modern
        concert piano has 88 keys, 52 white and 36 black, and more than 200 strings.""",
        Q("Who invented the piano?", "Bartolomeo Cristofori"),
        Q("How are the strings of a harpsichord sounded?", "plucked"),
        Q("How many keys does a modern concert piano have?", "88"),
    ),
    P(
        "Association football",
        """Association football, known as soccer in some countries, is played between two teams of eleven players on
        a rectangular pitch of grass or artificial turf. A professional match lasts 90 minutes, divided into two
        halves of 45 minutes, with time added by the referee for stoppages. Only the goalkeeper may handle the ball,
        and only inside their own penalty area. The modern rules were first written down in 1863, when the Football
        Association was formed at a meeting in a London tavern. The sport's most watched tournament, the FIFA World
        Cup, has been held every four years since 1930, apart from a break during the Second World War.""",
        Q("How many players are on each team?", "eleven"),
        Q("How long is each half of a professional match?", "45 minutes"),
        Q("When was the Football Association formed?", "1863"),
    ),
    P(
        "Bread",
        """Bread dough rises because of yeast, a single-celled fungus that feeds on the sugars in flour. As the yeast
        ferments, it gives off carbon dioxide gas, which is trapped by a stretchy network of gluten proteins formed
        when the flour is mixed with water and kneaded. The trapped bubbles make the dough swell, and the heat of the
        oven later sets the structure and drives off the alcohol that fermentation also produces. Sourdough bread is
        leavened not with packaged yeast but with a starter, a fermented mixture of flour and water that contains
        wild yeasts and lactic acid bacteria, which give the loaf its sour taste.""",
        Q("What kind of organism is yeast?", "single-celled fungus"),
        Q("What gas does yeast give off as it ferments?", "carbon dioxide"),
        Q("Which proteins trap the gas in bread dough?", "gluten"),
    ),
    P(
        "Marlow Street Library",
        """The Marlow Street Library in the town of Ashbury opened in 1887 with a gift of 3,000 books from a local
        mill owner, Thomas Pell. For its first decades it occupied two rooms above the corn exchange, until a
        purpose-built red-brick library designed by the architect Ada Whitcombe opened beside the market square in
        1912. The building was badly damaged by a flood in 1947 and restored over the following three years. Today
        the library holds about 60,000 items, runs a weekly chess club, and keeps the town's archive of photographs
        and parish records.""",
        Q("Who gave the library its first books?", "Thomas Pell"),
        Q("Who designed the purpose-built library?", "Ada Whitcombe"),
        Q("How many items does the library hold today?", "60,000", also=("about 60,000",)),
    ),
    P(
        "Magnetic compass",
        """A magnetic compass works because the Earth behaves like a giant magnet. A light magnetised needle, free to
        turn on a pivot, lines up with the planet's magnetic field and points towards the magnetic north pole, which
        lies some distance from the geographic North Pole. The angle between the two directions at a given place is
        called magnetic declination, and navigators correct for it using charts. Compasses were first used for
        navigation in China during the Song dynasty, and by the thirteenth century sailors in Europe and the Islamic
        world were using them too.""",
        Q("What is the angle between magnetic north and geographic north called?", "magnetic declination"),
        Q("In which country were compasses first used for navigation?", "China"),
        Q("During which dynasty were compasses first used for navigation?", "Song dynasty"),
    ),
    P(
        "Origins of the internet",
        """The internet grew out of ARPANET, a network funded by the United States Department of Defense, which sent
        its first message between computers in California in 1969. In the 1970s Vint Cerf and Bob Kahn designed the
        Transmission Control Protocol and the Internet Protocol, usually shortened to TCP/IP, which let different
        networks exchange data in a common format. ARPANET switched to TCP/IP on 1 January 1983, a date often
        described as the birth of the internet. The World Wide Web, a system of linked pages viewed through a
        browser, came later: Tim Berners-Lee proposed it in 1989 while working at CERN near Geneva.""",
        Q("Who designed TCP/IP?", "Vint Cerf and Bob Kahn"),
        Q("When did ARPANET switch to TCP/IP?", "1 January 1983"),
        Q("Who proposed the World Wide Web?", "Tim Berners-Lee"),
    ),
    P(
        "Sahara",
        """The Sahara is the largest hot desert on Earth, covering about nine million square kilometres of North
        Africa, an area almost as large as the United States. Despite its reputation, only a small part of it is
        covered by sand dunes; most of the desert consists of rocky plateaus and gravel plains. Daytime temperatures
        in summer often exceed 40 °C, yet nights can be cold because the dry air holds little heat. Thousands of years
        ago the region was much wetter, and ancient rock paintings show giraffes, cattle and people swimming in
        places that are now completely dry.""",
        Q("How large is the Sahara?", "nine million square kilometres", also=("about nine million square kilometres",)),
        Q("What temperature do summer days in the Sahara often exceed?", "40 °C"),
        Q("Why can nights in the Sahara be cold?", "the dry air holds little heat"),
    ),
    P(
        "Emperor penguin",
        """The emperor penguin is the tallest and heaviest of all living penguins, standing more than a metre high. It
        breeds on the sea ice of Antarctica during the bitter southern winter. After the female lays a single egg,
        she passes it to her partner and returns to the ocean to feed. For about two months the male balances the
        egg on his feet under a warm fold of skin called a brood pouch, eating nothing while the colony huddles
        together against winds that can reach 200 kilometres per hour. Emperor penguins can dive to depths of more
        than 500 metres in search of fish, krill and squid.""",
        Q("Which is the tallest of all living penguins?", "emperor penguin"),
        Q("Where does the male keep the egg?", "on his feet"),
        Q("How deep can emperor penguins dive?", "more than 500 metres", also=("500 metres",)),
    ),
    P(
        "Tea",
        """All true teas come from the leaves of a single plant, Camellia sinensis, an evergreen shrub native to East
        Asia. The differences between green, oolong and black tea come mainly from how the leaves are processed. For
        green tea, the freshly picked leaves are heated soon after harvest, which stops the natural browning
        reaction known as oxidation. Black tea leaves are rolled and left to oxidise fully, which darkens them and
        gives a stronger, maltier flavour, while oolong is only partly oxidised. Herbal infusions such as chamomile
        or peppermint are often called teas but contain no leaves of the tea plant.""",
        Q("Which plant do all true teas come from?", "Camellia sinensis"),
        Q("What is the natural browning reaction in tea leaves called?", "oxidation"),
        # "oolong" occurs twice; the question is about partial oxidation, the second occurrence.
        Q("Which tea is only partly oxidised?", "oolong", nth=2),
    ),
    P(
        "Rainbows",
        """A rainbow appears when sunlight shines into falling raindrops while the Sun is behind the observer. Inside
        each drop the light bends as it enters, reflects off the back of the drop, and bends again as it leaves.
        Because each colour bends by a slightly different amount, white light is spread into a band of colours. The
        main bow always has red on its outer edge and violet on the inside, and it forms at an angle of about 42
        degrees from the point directly opposite the Sun. Isaac Newton, who studied light with glass prisms, divided
        the spectrum into seven named colours.""",
        Q("Where must the Sun be for someone to see a rainbow?", "behind the observer"),
        Q("At what angle does the main bow form?", "42 degrees"),
        Q("Into how many colours did Newton divide the spectrum?", "seven"),
    ),
    P(
        "Bicycle",
        """The earliest ancestor of the bicycle was the running machine built by the German inventor Karl Drais in
        1817. It had two wheels and a steerable front, but no pedals: the rider sat astride a wooden frame and pushed
        along the ground with their feet. Pedals fixed directly to the front wheel appeared in France in the 1860s,
        leading to the high-wheeler, whose huge front wheel covered more distance with each turn but made falls
        dangerous. The safety bicycle of the 1880s, with two wheels of equal size and a chain driving the rear wheel,
        established the basic shape still used today.""",
        Q("Who built the earliest ancestor of the bicycle?", "Karl Drais"),
        Q("How did a rider move the running machine along?", "pushed along the ground with their feet"),
        Q("What drives the rear wheel of a safety bicycle?", "a chain"),
    ),
    P(
        "Corran Point lighthouse",
        """The Corran Point lighthouse stands on a granite headland at the mouth of the Elver Estuary. It was built in
        1864 after the schooner Margaret Hale struck the rocks below in a winter storm, with the loss of all eleven
        of her crew. The white tower is 27 metres tall, and its light, visible for about 35 kilometres, flashes twice
        every fifteen seconds. Keepers lived at the station until 1989, when the light was automated; their cottages
        now house a small maritime museum.""",
        Q("Which ship's wreck led to the building of the lighthouse?", "Margaret Hale"),
        Q("How tall is the lighthouse tower?", "27 metres"),
        Q("What do the keepers' cottages house now?", "a small maritime museum"),
    ),
    P(
        "Aluminium",
        """Aluminium is the most abundant metal in the Earth's crust, but it is never found pure in nature. Most of it
        is extracted from an ore called bauxite, which is first refined into alumina and then split by a powerful
        electric current in a smelter. Because smelting uses so much electricity, recycling is especially worthwhile:
        melting down old cans takes only about five per cent of the energy needed to make new metal from ore.
        Aluminium can be recycled again and again without losing its properties, and a used drinks can may be back
        on a shop shelf within about two months.""",
        Q("From which ore is most aluminium extracted?", "bauxite"),
        Q("What is bauxite first refined into?", "alumina"),
        Q("What share of the energy for new metal does recycling aluminium need?", "five per cent",
          also=("about five per cent",)),
    ),
    P(
        "Modern Olympic Games",
        """The modern Olympic Games were revived by the French educator Pierre de Coubertin, who founded the
        International Olympic Committee in 1894. The first Games were held in Athens in 1896, with about 240
        athletes, all of them men, from fourteen nations. Women first competed four years later, in Paris. The five
        interlocking rings of the Olympic flag, designed by Coubertin in 1913, stand for the union of the continents.
        Since 1994 the Summer and Winter Games have been held in alternating even-numbered years, so that one or the
        other takes place every two years.""",
        Q("Who founded the International Olympic Committee?", "Pierre de Coubertin"),
        Q("Where were the first modern Olympic Games held?", "Athens"),
        Q("What do the five Olympic rings stand for?", "the union of the continents"),
    ),
    P(
        "Great Barrier Reef",
        """The Great Barrier Reef, off the coast of Queensland in northeastern Australia, is the world's largest coral
        reef system. It stretches for more than 2,300 kilometres and is made up of nearly 3,000 individual reefs and
        hundreds of islands. The reef is built by tiny animals called coral polyps, which live in partnership with
        algae that supply them with food and their bright colours. When the water becomes too warm, the polyps expel
        the algae and turn white, an effect known as coral bleaching. The reef was listed as a World Heritage Site in
        1981.""",
        Q("Off which Australian state does the Great Barrier Reef lie?", "Queensland"),
        Q("What is it called when polyps expel their algae and turn white?", "coral bleaching"),
        Q("When was the reef listed as a World Heritage Site?", "1981"),
    ),
    P(
        "Vaccination",
        """In 1796 the English doctor Edward Jenner tested a country belief that milkmaids who caught cowpox, a mild
        disease, were protected from smallpox. He took material from a cowpox sore on a milkmaid's hand and scratched
        it into the arm of an eight-year-old boy, James Phipps, who later did not fall ill when exposed to smallpox.
        The word vaccine comes from vacca, the Latin for cow. Vaccination spread around the world over the next
        century, and after a global campaign the World Health Organization declared smallpox eradicated in 1980.""",
        Q("Who tested whether cowpox protected people from smallpox?", "Edward Jenner"),
        Q("What was the name of the boy Jenner treated?", "James Phipps"),
        Q("In what year was smallpox declared eradicated?", "1980"),
    ),
    P(
        "Human heart",
        """The human heart is a muscular pump about the size of a closed fist. It has four chambers: two upper atria,
        which receive blood, and two lower ventricles, which push it out. The right side sends blood to the lungs to
        pick up oxygen, while the stronger left side pumps oxygen-rich blood through the rest of the body. Valves
        between the chambers stop blood from flowing backwards, and their closing makes the familiar lub-dub sound
        of a heartbeat. At rest an adult heart beats about 60 to 100 times a minute, which adds up to around 100,000
        beats a day.""",
        Q("How many chambers does the human heart have?", "four"),
        Q("What are the lower chambers of the heart called?", "ventricles"),
        Q("Where does the right side of the heart send blood?", "the lungs", also=("to the lungs",)),
    ),
    P(
        "Jazz",
        """Jazz developed in New Orleans in the early twentieth century, drawing on blues, ragtime, brass band music
        and the church songs of African American communities. Its defining features include swung rhythms and
        improvisation, in which musicians invent melodies on the spot within the structure of a tune. The trumpeter
        and singer Louis Armstrong, who grew up in the city, became one of its first great soloists in the 1920s.
        Over the following decades the music branched into many styles, from the big-band swing of the 1930s to the
        fast, complex bebop of the 1940s.""",
        Q("In which city did jazz develop?", "New Orleans"),
        Q("What is it called when musicians invent melodies on the spot?", "improvisation"),
        Q("Which trumpeter became one of the first great jazz soloists?", "Louis Armstrong"),
    ),
    P(
        "Festa della Castagna",
        """Every October the hill town of Valdoro holds the Festa della Castagna, a weekend festival devoted to the
        chestnut. The custom began in 1952, when growers who could not sell a bumper harvest roasted the nuts in the
        square and gave them away. Today stalls sell chestnut flour, honey and a dense cake called castagnaccio, and
        a brass band leads a parade from the church to the old mill. The highlight is a relay race in which teams
        from the town's four districts carry sacks of chestnuts up the steep main street.""",
        Q("When did the chestnut festival begin?", "1952"),
        Q("What is the dense chestnut cake called?", "castagnaccio"),
        Q("Where does the parade end?", "the old mill"),
    ),
    P(
        "Earthquakes",
        """Earthquakes happen when stress built up in the Earth's crust is suddenly released, usually along a fault
        where two blocks of rock slide past each other. The point underground where the rupture begins is called the
        hypocentre, and the point on the surface directly above it is the epicentre. In 1935 the American
        seismologist Charles Richter introduced a scale for comparing the sizes of earthquakes in California.
        Seismologists now mostly use the moment magnitude scale, which works better for very large events; on both
        scales each whole-number step means about 32 times more energy released.""",
        Q("Who introduced a scale for earthquake size in 1935?", "Charles Richter"),
        Q("Which scale do seismologists now mostly use?", "moment magnitude scale"),
        Q("How much more energy does each whole-number step mean?", "32 times", also=("about 32 times",)),
    ),
    P(
        "Electric battery",
        """The first true battery was built in 1800 by the Italian physicist Alessandro Volta. His voltaic pile was a
        stack of alternating zinc and copper discs separated by pieces of cloth or cardboard soaked in salt water, and
        it was the first device to produce a steady electric current. The unit of electrical potential, the volt, is
        named in his honour. Most rechargeable batteries in today's phones and electric cars use lithium-ion
        chemistry, in which lithium ions move between the two electrodes as the battery charges and discharges.""",
        Q("Who built the first true battery?", "Alessandro Volta"),
        Q("Which metals were the discs of the voltaic pile made of?", "zinc and copper"),
        Q("Which unit is named after Volta?", "the volt"),
    ),
    P(
        "Telephone",
        """Alexander Graham Bell, a Scottish-born teacher of the deaf living in the United States, received a patent
        for the telephone in March 1876. A few days later he spoke the first clear sentence over his device to his
        assistant, Thomas Watson, who was waiting in another room. Early telephones were rented in pairs and joined
        by a private wire; the first commercial switchboard, which let any subscriber be connected to any other,
        opened in New Haven, Connecticut, in 1878.""",
        Q("When did Bell receive his patent for the telephone?", "March 1876"),
        Q("Who was Bell's assistant?", "Thomas Watson"),
        Q("Where did the first commercial switchboard open?", "New Haven, Connecticut"),
    ),
    P(
        "Glaciers",
        """A glacier is a large mass of ice that forms on land where more snow falls each winter than melts in summer.
        Over many years the snow is pressed into dense ice, which becomes so heavy that it starts to flow slowly
        downhill under its own weight. As it moves, a glacier scrapes and plucks rock from the ground, carving
        U-shaped valleys and leaving behind ridges of debris called moraines. About two thirds of the world's fresh
        water is locked up in glaciers and ice sheets, most of it in Antarctica.""",
        Q("What shape of valley do glaciers carve?", "U-shaped"),
        Q("What are the ridges of debris left by glaciers called?", "moraines"),
        Q("How much of the world's fresh water is locked up in ice?", "two thirds", also=("About two thirds",)),
    ),
    P(
        "Pi",
        """Pi, written with the Greek letter π, is the ratio of a circle's circumference to its diameter. Its value is
        about 3.14159, and because it is an irrational number its decimal digits go on forever without repeating.
        The Greek mathematician Archimedes of Syracuse estimated it by drawing polygons inside and outside a circle,
        and showed that it lies between 3 10/71 and 3 1/7. Fans of mathematics celebrate Pi Day on 14 March, a date
        written 3/14 in the American style.""",
        Q("Which Greek letter is used to write pi?", "π"),
        Q("Who estimated pi by drawing polygons?", "Archimedes of Syracuse"),
        Q("When is Pi Day celebrated?", "14 March"),
    ),
    P(
        "Pizza",
        """Naples is widely regarded as the birthplace of modern pizza. By the eighteenth century, flatbreads topped
        with tomato were sold cheaply to working people on the city's streets. According to a popular story, in 1889
        the pizza maker Raffaele Esposito baked a pizza for the visiting Queen Margherita of Savoy, topped with
        tomato, mozzarella and basil to echo the red, white and green of the Italian flag, and named it after her.
        Historians doubt parts of the tale, but the margherita remains the classic Neapolitan pizza. In 2017 UNESCO
        added the art of the Neapolitan pizzaiuolo to its list of intangible cultural heritage.""",
        Q("Which city is regarded as the birthplace of modern pizza?", "Naples"),
        Q("Who baked a pizza for Queen Margherita?", "Raffaele Esposito"),
        Q("Which toppings echo the colours of the Italian flag?", "tomato, mozzarella and basil"),
    ),
    P(
        "Amazon rainforest",
        """The Amazon rainforest covers much of the basin of the Amazon River in South America, spreading across nine
        countries, with about sixty per cent of it in Brazil. It is the largest tropical rainforest in the world and
        home to an extraordinary variety of life: scientists estimate that it holds around 390 billion individual
        trees belonging to some 16,000 species. The forest releases huge amounts of water vapour, which forms clouds
        that carry rain far inland. Large areas have been cleared for cattle ranching and farming, which threatens
        this role in the region's climate.""",
        Q("Across how many countries does the Amazon rainforest spread?", "nine"),
        Q("How many tree species are there in the Amazon?", "16,000"),
        Q("What have large areas of the forest been cleared for?", "cattle ranching and farming"),
    ),
    P(
        "Tour de France",
        """The Tour de France is a men's cycling race held over three weeks each July, covering around 3,500
        kilometres in 21 daily stages. It was first organised in 1903 by the sports newspaper L'Auto to boost its
        sales. The rider with the lowest total time wears the yellow jersey, or maillot jaune, a colour chosen
        because the newspaper was printed on yellow paper. The route changes every year and often visits neighbouring
        countries, but the race traditionally finishes on the Champs-Élysées in Paris.""",
        Q("Which newspaper first organised the Tour de France?", "L'Auto"),
        Q("What is the yellow jersey called in French?", "maillot jaune"),
        Q("Why was yellow chosen for the leader's jersey?", "the newspaper was printed on yellow paper",
          also=("because the newspaper was printed on yellow paper",)),
        Q("On which avenue does the race traditionally finish?", "Champs-Élysées", also=("Champs-Élysées in Paris",)),
    ),
    P(
        "Alan Turing",
        """In 1936 the English mathematician Alan Turing published a paper describing an imaginary device, now called
        a Turing machine, that reads and writes symbols on an endless tape according to a table of rules. He showed
        that such a simple machine could carry out any calculation that can be written as a step-by-step procedure.
        During the Second World War Turing worked at Bletchley Park, where he helped design the electromechanical
        bombe used to break messages encrypted with the German Enigma machine. In 1950 he proposed what became known
        as the Turing test, which asks whether a machine's written conversation can be told apart from a person's.""",
        Q("In what year did Turing describe his imaginary machine?", "1936"),
        Q("Where did Turing work during the Second World War?", "Bletchley Park"),
        Q("Which German cipher machine did the bombe help to break?", "Enigma"),
    ),
    P(
        "Lightning and thunder",
        """Lightning is a giant electrical spark between a cloud and the ground, or between different parts of
        clouds. A single bolt heats the air around it to about 30,000 °C, several times hotter than the surface of
        the Sun, and the sudden expansion of that air produces the boom of thunder. Because light arrives almost
        instantly while sound travels at about 343 metres per second, you can estimate how far away a storm is:
        count the seconds between the flash and the thunder, then divide by three to get the distance in
        kilometres.""",
        Q("How hot can a lightning bolt make the air around it?", "30,000 °C", also=("about 30,000 °C",)),
        Q("What produces the boom of thunder?", "the sudden expansion of that air"),
        Q("How fast does sound travel?", "343 metres per second"),
    ),
    P(
        "Brightwell Systems",
        """Brightwell Systems was founded in 2009 by three former university classmates, Priya Raman, Owen Castell
        and Jonas Berg, in a rented garage in Dundee. Their first product was a timetabling program for schools,
        which they sold to forty local councils within two years. In 2016 the company moved into a converted jute
        mill on the waterfront and began writing software that helps hospitals plan staff rotas. Brightwell now
        employs about 350 people, and Raman, its chief executive, has insisted that the firm keep its headquarters in
        the city where it started.""",
        Q("In which city was Brightwell Systems founded?", "Dundee"),
        Q("What was Brightwell's first product?", "a timetabling program for schools"),
        # "Raman" occurs twice; the sentence that names the chief executive is the second occurrence.
        Q("Who is Brightwell's chief executive?", "Raman", nth=2, also=("Priya Raman",)),
        Q("How many people does Brightwell employ?", "350", also=("about 350",)),
    ),
    P(
        "Rice",
        """Rice is the staple food of more than half of the world's people, and about ninety per cent of it is grown
        and eaten in Asia. Most rice is grown in paddies, flat fields surrounded by low earth banks that are flooded
        with a few centimetres of water during the growing season. The water keeps down weeds and pests, while the
        rice plant draws air to its roots through hollow channels in its stem. The grain is harvested when the plants
        turn golden, then dried and milled to remove the husk; brown rice keeps the bran layer that white rice
        loses.""",
        Q("On which continent is most rice grown?", "Asia"),
        Q("What are the flooded fields where rice grows called?", "paddies"),
        Q("What does the water in a paddy keep down?", "weeds and pests"),
    ),
    P(
        "Violin",
        """The violin took its modern form in northern Italy in the sixteenth century, and the town of Cremona became
        the centre of its making. There the Amati family founded a tradition that was carried on by Antonio
        Stradivari, whose instruments, made mostly between about 1680 and 1737, are still prized by soloists and can
        sell for millions at auction. A violin has four strings and is played with a bow strung with horsehair. It is
        the smallest and highest-pitched member of the string family, which also includes the viola, the cello and
        the double bass.""",
        Q("Which town became the centre of violin making?", "Cremona"),
        Q("Which family founded the violin-making tradition in Cremona?", "the Amati family"),
        Q("What is a violin bow strung with?", "horsehair"),
    ),
    P(
        "Hydrogen",
        """Hydrogen is the lightest chemical element and the first in the periodic table. It is also the most
        abundant element in the universe, making up roughly three quarters of all ordinary matter by mass, and it is
        the main fuel of stars, which fuse it into helium. On Earth it is rarely found on its own; most of it is
        bound up with oxygen in water. The English scientist Henry Cavendish identified it as a distinct substance in
        1766, and the French chemist Antoine Lavoisier later gave it its name, from Greek words meaning
        water-former.""",
        Q("How much of all ordinary matter is hydrogen by mass?", "three quarters", also=("roughly three quarters",)),
        Q("Who identified hydrogen as a distinct substance?", "Henry Cavendish"),
        Q("What does the name hydrogen mean?", "water-former"),
    ),
    P(
        "Wolfgang Amadeus Mozart",
        """Wolfgang Amadeus Mozart was born in Salzburg on 27 January 1756. His father, Leopold, a violinist and
        composer at the court of the Prince-Archbishop, began teaching him as a small child, and by the age of six
        Wolfgang was touring the courts of Europe with his older sister, Maria Anna, known as Nannerl. In 1781 he
        settled in Vienna, where he wrote many of his best-known works, including the operas The Marriage of Figaro
        and The Magic Flute. He died there in December 1791, at the age of 35, leaving his Requiem unfinished.""",
        Q("Where was Mozart born?", "Salzburg"),
        Q("What was Mozart's sister known as?", "Nannerl"),
        Q("Which work did Mozart leave unfinished?", "Requiem"),
    ),
    P(
        "Kimchi",
        """Kimchi is a Korean side dish of salted and fermented vegetables, most often napa cabbage and radish,
        seasoned with chilli powder, garlic, ginger and fish sauce. Its sour tang comes from lactic acid bacteria
        that multiply as the vegetables ferment. Traditionally, families made large batches together in late autumn,
        a custom called gimjang, and stored them in earthenware jars buried in the ground to keep them cool through
        the winter. Today many Korean homes have a separate refrigerator made just for kimchi.""",
        Q("Which vegetable is most often used in kimchi?", "napa cabbage"),
        Q("What gives kimchi its sour tang?", "lactic acid bacteria"),
        Q("What is the custom of making kimchi in late autumn called?", "gimjang"),
    ),
    P(
        "Fenmarch Canal",
        # Long on purpose (about 470 words): with a question it needs two 384-token windows, and the last questions'
        # answers lie beyond the first window.
        """The Fenmarch Canal runs for 58 kilometres between the river port of Tolland and the coal town of Brackley
        Moor. It was proposed in 1791 by a group of mill owners who were tired of paying high tolls on the turnpike
        road, and an Act of Parliament authorising it was passed in 1793. The engineer chosen to lay it out was
        Josiah Whitlock, a former millwright who had taught himself surveying while working on drainage schemes in
        the fens. Whitlock preferred long, level stretches to frequent locks, so the canal follows the contours of
        the valley for much of its length, winding around hills rather than climbing over them. Construction began at
        the Tolland end in the spring of 1794. Most of the digging was done by hand by gangs of labourers known as
        navvies, who lived in temporary camps beside the works and moved on as each section was finished. The
        hardest obstacle was Greyridge Hill, where the builders had to cut a tunnel 1,100 metres long through
        sandstone and clay. There was no towpath inside the tunnel, so boatmen lay on their backs on planks and
        pushed against the walls with their feet, a practice called legging. The tunnel took six years to complete,
        and water seeping through the roof caused two serious collapses. The canal opened along its whole length in
        1802. At its busiest, in the 1830s, more than 300 boats used it each week, carrying coal down to Tolland and
        returning with grain, timber and lime. Each boat was pulled by a single horse walking on the towpath, and a
        horse could haul about 30 tonnes on the water, many times what it could pull on a road. The arrival of the
        railway in 1847 began a long decline. The railway company bought the canal, raised its tolls and let it silt
        up, and the last commercial cargo, a load of roadstone, passed through the Greyridge Tunnel in 1938. For
        three decades afterwards the waterway lay abandoned, choked with reeds and rubbish. In 1969 a group of
        volunteers formed the Fenmarch Canal Trust to bring it back to life. Working mostly at weekends, they cleared
        the channel, rebuilt eleven locks and relined the leaking stretches with clay. The whole canal reopened to
        pleasure boats in 2004, and today it is popular with walkers, anglers and people on holiday in hired
        narrowboats.""",
        Q("Who was the engineer who laid out the Fenmarch Canal?", "Josiah Whitlock"),
        Q("What was pushing a boat through the tunnel with the feet called?", "legging"),
        Q("When did the railway arrive?", "1847"),
        Q("Which group was formed in 1969 to restore the canal?", "the Fenmarch Canal Trust"),
    ),
)


if __name__ == "__main__":
    sys.exit(main())
