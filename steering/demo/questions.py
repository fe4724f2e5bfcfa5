"""Short-answer questions for the real-model demo: a question, and the answers that count as right.

Hand-written general-knowledge facts a 135M chat model partly knows (capitals, counts, colours,
opposites, science, languages, currencies, authors). An answer is right when one of its accepted
forms occurs in the reply as a whole word (case-insensitive), before any end-of-thinking marker.

Examples:
    >>> q = Question("How many legs does a spider have?", ("8", "eight"))
    >>> q.correct("A spider has 8 legs."), q.correct("Spiders have 18 legs.")
    (True, False)
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    text: str
    answers: tuple[str, ...]
    topic: str = ""

    def correct(self, reply: str) -> bool:
        return any(re.search(rf"(?<![\w-]){re.escape(a)}(?![\w-])", reply, re.I) for a in self.answers)


def _q(topic: str, rows: list[tuple[str, str]]) -> list[Question]:
    return [Question(text, tuple(a.split("|")), topic) for text, a in rows]


CAPITALS = [
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Italy", "Rome"),
    ("Germany", "Berlin"),
    ("Spain", "Madrid"),
    ("England", "London"),
    ("Russia", "Moscow"),
    ("China", "Beijing"),
    ("Egypt", "Cairo"),
    ("Greece", "Athens"),
    ("Portugal", "Lisbon"),
    ("Canada", "Ottawa"),
    ("Australia", "Canberra"),
    ("India", "New Delhi|Delhi"),
    ("Ireland", "Dublin"),
    ("Norway", "Oslo"),
    ("Sweden", "Stockholm"),
    ("Austria", "Vienna"),
    ("Poland", "Warsaw"),
    ("Kenya", "Nairobi"),
    ("Mexico", "Mexico City"),
    ("Argentina", "Buenos Aires"),
    ("Peru", "Lima"),
    ("Thailand", "Bangkok"),
    ("South Korea", "Seoul"),
    ("Turkey", "Ankara"),
    ("Cuba", "Havana"),
    ("the Netherlands", "Amsterdam"),
    ("Belgium", "Brussels"),
    ("Denmark", "Copenhagen"),
    ("Finland", "Helsinki"),
    ("Hungary", "Budapest"),
    ("the Czech Republic", "Prague"),
    ("Brazil", "Brasilia|Brasília"),
    ("Chile", "Santiago"),
    ("Colombia", "Bogota|Bogotá"),
    ("Iran", "Tehran"),
    ("Iraq", "Baghdad"),
    ("Scotland", "Edinburgh"),
    ("the United States", "Washington"),
    ("Vietnam", "Hanoi"),
    ("the Philippines", "Manila"),
    ("Indonesia", "Jakarta"),
    ("Nigeria", "Abuja"),
    ("Ukraine", "Kyiv|Kiev"),
    ("Switzerland", "Bern|Berne"),
    ("Saudi Arabia", "Riyadh"),
    ("Morocco", "Rabat"),
    ("New Zealand", "Wellington"),
    ("Pakistan", "Islamabad"),
    ("Bangladesh", "Dhaka"),
    ("Romania", "Bucharest"),
    ("Bulgaria", "Sofia"),
    ("Serbia", "Belgrade"),
    ("Croatia", "Zagreb"),
    ("Iceland", "Reykjavik|Reykjavík"),
    ("Venezuela", "Caracas"),
    ("Lebanon", "Beirut"),
    ("Syria", "Damascus"),
    ("Afghanistan", "Kabul"),
    ("Malaysia", "Kuala Lumpur"),
    ("Qatar", "Doha"),
    ("Ethiopia", "Addis Ababa"),
]
COUNTS = [
    ("How many legs does a spider have?", "8|eight"),
    ("How many days are in a week?", "7|seven"),
    ("How many months are in a year?", "12|twelve"),
    ("How many hours are in a day?", "24|twenty-four"),
    ("How many minutes are in an hour?", "60|sixty"),
    ("How many sides does a triangle have?", "3|three"),
    ("How many sides does a square have?", "4|four"),
    ("How many legs does a dog have?", "4|four"),
    ("How many wheels does a bicycle have?", "2|two"),
    ("How many continents are there on Earth?", "7|seven"),
    ("How many planets are in the solar system?", "8|eight"),
    ("How many legs does an insect have?", "6|six"),
    ("How many seconds are in a minute?", "60|sixty"),
    ("How many sides does a hexagon have?", "6|six"),
    ("How many strings does a standard guitar have?", "6|six"),
    ("How many players are on a soccer team on the field?", "11|eleven"),
    ("How many days are in a leap year?", "366"),
    ("How many colors are in a rainbow?", "7|seven"),
    ("How many hearts does an octopus have?", "3|three"),
    ("How many arms does an octopus have?", "8|eight"),
    ("How many weeks are in a year?", "52|fifty-two"),
    ("How many sides does a pentagon have?", "5|five"),
    ("How many years are in a century?", "100|hundred"),
    ("How many years are in a decade?", "10|ten"),
    ("How many zeros are in one thousand?", "3|three"),
    ("How many eyes do humans have?", "2|two"),
]
COLOURS = [
    ("What color is a ripe banana?", "yellow"),
    ("What color is grass?", "green"),
    ("What color is the sky on a clear day?", "blue"),
    ("What color is fresh snow?", "white"),
    ("What color is blood?", "red"),
    ("What color is coal?", "black"),
    ("What color is a ripe tomato?", "red"),
    ("What color are the leaves of most trees in summer?", "green"),
    ("What color is a carrot?", "orange"),
    ("What color do you get by mixing blue and yellow?", "green"),
    ("What color do you get by mixing red and white?", "pink"),
    ("What color is milk?", "white"),
    ("What color is the sun in drawings for children?", "yellow"),
    ("What color is a polar bear's fur?", "white"),
    ("What color is a lemon?", "yellow"),
]
OPPOSITES = [
    ("hot", "cold"),
    ("up", "down"),
    ("big", "small|little"),
    ("day", "night"),
    ("fast", "slow"),
    ("happy", "sad|unhappy"),
    ("open", "closed|close|shut"),
    ("light", "dark|heavy"),
    ("left", "right"),
    ("wet", "dry"),
    ("old", "new|young"),
    ("early", "late"),
    ("full", "empty"),
    ("hard", "soft|easy"),
    ("north", "south"),
    ("east", "west"),
    ("win", "lose"),
    ("strong", "weak"),
    ("tall", "short"),
    ("rich", "poor"),
]
SCIENCE = [
    ("What is the largest planet in the solar system?", "Jupiter"),
    ("What planet do we live on?", "Earth"),
    ("What star is at the center of our solar system?", "Sun"),
    ("What gas do plants absorb from the air?", "carbon dioxide|CO2"),
    ("What gas do humans need to breathe to live?", "oxygen"),
    ("At what temperature in Celsius does water boil?", "100"),
    ("At what temperature in Celsius does water freeze?", "0|zero"),
    ("What is the chemical formula of water?", "H2O"),
    ("What is the largest ocean on Earth?", "Pacific"),
    ("What is the tallest mountain in the world?", "Everest"),
    ("What is the fastest land animal?", "cheetah"),
    ("What is the largest mammal?", "blue whale|whale"),
    ("What is the closest star to Earth?", "Sun"),
    ("Which planet is known as the Red Planet?", "Mars"),
    ("What do bees make?", "honey"),
    ("What is frozen water called?", "ice"),
    ("What organ pumps blood through the body?", "heart"),
    ("What do caterpillars turn into?", "butterfly|butterflies|moth"),
    ("What is the natural satellite of the Earth called?", "Moon"),
    ("What force pulls objects toward the Earth?", "gravity"),
    ("Which animal is known as the king of the jungle?", "lion"),
    ("What is the longest river in Africa?", "Nile"),
    ("What is the hardest natural substance?", "diamond"),
    ("Which bird is a symbol of peace?", "dove"),
    ("What do you call a baby cat?", "kitten"),
    ("What do you call a baby dog?", "puppy"),
    ("What is the main language spoken in Brazil?", "Portuguese"),
    ("What language is spoken in France?", "French"),
    ("What language is mainly spoken in Spain?", "Spanish"),
    ("What language is mainly spoken in Germany?", "German"),
    ("What language is mainly spoken in Japan?", "Japanese"),
    ("What language is mainly spoken in Italy?", "Italian"),
    ("What is the currency of Japan?", "yen"),
    ("What is the currency of the United States?", "dollar"),
    ("What is the currency of the United Kingdom?", "pound"),
    ("What is the currency used in most of Europe?", "euro"),
    ("Who wrote Romeo and Juliet?", "Shakespeare"),
    ("Who painted the Mona Lisa?", "Leonardo|da Vinci"),
    ("Who developed the theory of relativity?", "Einstein"),
    ("Who was the first person to walk on the Moon?", "Armstrong"),
    ("What is 2 plus 2?", "4|four"),
    ("What is 10 minus 3?", "7|seven"),
    ("What is 5 times 2?", "10|ten"),
    ("What is half of 10?", "5|five"),
    ("What is 3 plus 4?", "7|seven"),
    ("What is 6 plus 6?", "12|twelve"),
]


NATURE = [
    ("What animal says moo?", "cow"),
    ("What animal has a trunk?", "elephant"),
    ("What animal has black and white stripes?", "zebra"),
    ("What animal has a very long neck and eats leaves?", "giraffe"),
    ("What is a baby sheep called?", "lamb"),
    ("What is a baby cow called?", "calf"),
    ("Which animal carries its baby in a pouch?", "kangaroo"),
    ("Which black and white bear eats bamboo?", "panda"),
    ("What animal is called man's best friend?", "dog"),
    ("Which insect makes honey?", "bee"),
    ("Which animal can change the color of its skin?", "chameleon"),
    ("What does a frog start its life as?", "tadpole"),
    ("What is the largest bird?", "ostrich"),
    ("Which bird cannot fly and lives in Antarctica?", "penguin"),
    ("What is the largest organ of the human body?", "skin"),
    ("What do we use to smell?", "nose"),
    ("Which organ do we think with?", "brain"),
    ("How many bones are in the adult human body?", "206"),
    ("What part of a plant makes food from sunlight?", "leaf|leaves"),
]
PLACES = [
    ("On which continent is Egypt?", "Africa"),
    ("On which continent is France?", "Europe"),
    ("On which continent is Japan?", "Asia"),
    ("On which continent is Brazil?", "South America"),
    ("What is the largest country by area?", "Russia"),
    ("Which ocean lies between Europe and America?", "Atlantic"),
    ("What is the longest river in South America?", "Amazon"),
    ("In which country are the pyramids of Giza?", "Egypt"),
    ("In which city is the Eiffel Tower?", "Paris"),
    ("In which city is the Colosseum?", "Rome"),
    ("In which country is the Great Wall?", "China"),
    ("In which city is the Statue of Liberty?", "New York"),
    ("In which city is Big Ben?", "London"),
    ("What is the largest hot desert in the world?", "Sahara"),
    ("Which country is shaped like a boot?", "Italy"),
]


def bank() -> list[Question]:
    """All questions, in a fixed order."""
    return [
        *_q("capital", [(f"What is the capital of {c}?", a) for c, a in CAPITALS]),
        *_q("count", COUNTS),
        *_q("colour", COLOURS),
        *_q("opposite", [(f"What is the opposite of {w}?", a) for w, a in OPPOSITES]),
        *_q("science", SCIENCE),
        *_q("nature", NATURE),
        *_q("place", PLACES),
    ]


def split(seed: int = 0, n_pairs: int = 50, n_val: int = 24) -> tuple[list[Question], list[Question], list[Question]]:
    """``(pair questions, validation questions, held-out test questions)``, disjoint, shuffled with ``seed``."""
    qs = bank()
    random.Random(seed).shuffle(qs)
    return qs[:n_pairs], qs[n_pairs : n_pairs + n_val], qs[n_pairs + n_val :]
