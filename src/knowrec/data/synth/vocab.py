"""The words the generators draw from: latent movie attributes with their paraphrases,
invented names and places, sentence templates, and news topics.

The lists are data: their order is part of the seed → world mapping, so a change here
changes every generated world (bump ``GENERATOR_VERSION`` in world.py).
"""

from __future__ import annotations

import numpy as np

from knowrec.data.synth.sampling import pick

# ------------------------------------------------------------------------------------
# Movie vocabulary. Hidden sub-genres map to the MovieLens surface genres they usually
# carry; each latent value has several paraphrases so the text never uses one keyword.

HIDDEN_GENRES: list[tuple[str, list[str], list[str]]] = [
    ("space opera", ["Sci-Fi", "Adventure"],
     ["space opera", "sprawling space opera saga", "interstellar space adventure",
      "starship epic among distant galaxies"]),
    ("cyberpunk", ["Sci-Fi", "Thriller"],
     ["cyberpunk story", "neon cyberpunk thriller about hackers", "cyberpunk dystopia",
      "story of hackers, implants and megacorporations"]),
    ("heist", ["Crime", "Thriller"],
     ["heist picture", "heist caper about an elaborate robbery", "vault heist thriller",
      "caper about one last big score"]),
    ("detective mystery", ["Mystery", "Crime"],
     ["detective mystery", "whodunit with a dogged detective", "murder mystery",
      "clue-driven detective puzzle"]),
    ("slasher", ["Horror"],
     ["slasher", "masked-killer slasher", "slasher horror film",
      "blood-soaked stalk-and-slash story"]),
    ("supernatural horror", ["Horror"],
     ["supernatural horror film", "ghost story", "haunted-house ghost chiller",
      "supernatural tale of demonic possession"]),
    ("romantic comedy", ["Romance", "Comedy"],
     ["romantic comedy", "rom-com full of banter", "romantic comedy of reluctant lovers",
      "comedy about falling in love"]),
    ("period romance", ["Romance", "Drama"],
     ["period romance", "costume drama about a forbidden courtship",
      "period romance among the gentry", "corset-and-candlelight period piece"]),
    ("war epic", ["War", "Drama", "Action"],
     ["war epic", "battlefield war saga", "war story of soldiers in the trenches",
      "sweeping combat drama"]),
    ("western", ["Western"],
     ["western", "frontier western about gunslingers", "dusty western of cattle drives",
      "tale of outlaws on the open range"]),
    ("martial arts", ["Action"],
     ["martial arts film", "kung fu martial arts showcase", "martial arts tournament picture",
      "story built around hand-to-hand fight choreography"]),
    ("musical", ["Musical"],
     ["musical", "song-and-dance musical", "backstage musical", "story told through show tunes"]),
    ("animated adventure", ["Animation", "Children's", "Adventure"],
     ["animated adventure", "hand-drawn animated quest", "computer-animated romp",
      "cartoon journey with talking animals"]),
    ("high fantasy", ["Fantasy", "Adventure"],
     ["high fantasy", "sword-and-sorcery fantasy quest", "fantasy epic of wizards and dragons",
      "tale of enchanted realms"]),
    ("courtroom drama", ["Drama"],
     ["courtroom drama", "legal courtroom drama", "courtroom story of a trial",
      "tense jury-room drama"]),
    ("political satire", ["Comedy"],
     ["political satire", "satire of politicians and spin doctors", "political comedy",
      "biting satire about election campaigns"]),
    ("nature documentary", ["Documentary"],
     ["nature documentary", "wildlife documentary", "documentary about animals in the wild",
      "nonfiction portrait of fragile ecosystems"]),
    ("film noir", ["Film-Noir", "Crime"],
     ["film noir", "shadowy noir about a doomed private eye", "hard-boiled noir",
      "tale of femmes fatales and smoky offices"]),
    ("family comedy", ["Comedy", "Children's"],
     ["family comedy", "slapstick family comedy", "goofy comedy for the whole family",
      "romp about a chaotic household"]),
    ("disaster", ["Action", "Thriller"],
     ["disaster movie", "disaster thriller about an earthquake", "catastrophe thriller",
      "tale of survivors fleeing a tidal wave"]),
]  # fmt: skip
SURFACE_GENRES = [
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
]  # fmt: skip
THEMES: list[tuple[str, list[str]]] = [
    ("revenge", ["revenge", "a quest for revenge", "vengeance", "revenge and retribution"]),
    ("friendship", ["friendship", "an unlikely friendship", "loyalty between friends",
                    "the bonds of friendship"]),
    ("coming of age", ["coming of age", "a coming-of-age journey", "growing up",
                       "the passage from childhood to adulthood"]),
    ("family bonds", ["family bonds", "ties between parents and children",
                      "a family pulling together", "family loyalty"]),
    ("survival", ["survival", "survival against the odds", "endurance in the wilderness",
                  "the will to survive"]),
    ("betrayal", ["betrayal", "a trusted ally's betrayal", "treachery",
                  "betrayal and broken trust"]),
    ("redemption", ["redemption", "a shot at redemption", "atonement for past mistakes",
                    "a flawed hero seeking redemption"]),
    ("identity", ["identity", "the search for identity", "who we really are",
                  "a double life and a hidden identity"]),
    ("power and corruption", ["power and corruption", "corruption at the top",
                              "the corrupting pull of power", "greed and abuse of power"]),
    ("forbidden love", ["forbidden love", "star-crossed lovers", "a secret, forbidden romance",
                        "love across a forbidden divide"]),
    ("grief", ["grief", "loss and grief", "mourning a death in the family",
               "healing after grief and tragedy"]),
    ("freedom", ["freedom", "escape from oppression", "the fight for freedom",
                 "breaking free of confinement"]),
]  # fmt: skip
AUDIENCES: list[tuple[str, float, list[str]]] = [
    # name, the age-bucket index (0..6) it suits best, paraphrases
    ("children", 0.0, ["young children", "families with young children", "kids",
                       "children and their parents"]),
    ("teens", 1.0, ["teenagers", "a teen crowd", "high-school teenagers", "teen viewers"]),
    ("young adults", 2.0, ["young adults", "viewers in their twenties", "a young adult crowd",
                           "college-age young adults"]),
    ("adults", 3.5, ["adult viewers", "grown-up audiences", "a thirty-something adult audience",
                     "working adults"]),
    ("older adults", 5.5, ["older viewers", "audiences over fifty", "older, seasoned viewers",
                           "viewers who grew up decades ago"]),
]  # fmt: skip
MOODS: list[tuple[str, list[str]]] = [
    ("dark", ["dark", "dark and bleak", "grim", "brooding and dark"]),
    ("uplifting", ["uplifting", "hopeful and uplifting", "heartwarming", "inspiring"]),
    ("tense", ["tense", "suspenseful", "tense and nerve-racking", "gripping and tense"]),
    ("whimsical", ["whimsical", "playful and whimsical", "quirky", "whimsical and fanciful"]),
    ("melancholic", ["melancholic", "wistful", "bittersweet and melancholic", "mournful"]),
    ("light-hearted", ["light-hearted", "breezy", "cheerful and light-hearted", "easygoing"]),
]

# ------------------------------------------------------------------------------------
# Invented people (cast and crew; people and companies in the news)

FIRST_NAMES = [
    "Ada", "Bram", "Celia", "Dario", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonah",
    "Kira", "Lucas", "Mira", "Nico", "Olive", "Pavel", "Quinn", "Rosa", "Silas", "Tessa",
    "Umar", "Vera", "Wes", "Xenia", "Yusuf", "Zara", "Amos", "Beatrix", "Cyrus", "Delia",
    "Emeric", "Flora", "Gideon", "Hazel", "Ivo", "Juno", "Kai", "Lena", "Marek", "Nadia",
    "Otto", "Priya", "Rafael", "Selma", "Tobias", "Uma", "Viktor", "Wren", "Yara", "Zeno",
    "Anouk", "Bastian", "Clio", "Dorian", "Esme", "Fabian", "Gwen", "Henrik", "Isla", "Jasper",
]  # fmt: skip
LAST_NAMES = [
    "Ashdown", "Brennan", "Castell", "Dunmore", "Ellery", "Faraday", "Garrow", "Holloway",
    "Ivers", "Jessop", "Kettering", "Lindqvist", "Marlow", "Nakamura", "Okafor", "Pemberton",
    "Quintero", "Rasmussen", "Sorensen", "Thackeray", "Underhill", "Valcourt", "Whitlock",
    "Yardley", "Zielinski", "Abernathy", "Blackwood", "Carrow", "Delacroix", "Eastwick",
    "Fennimore", "Galloway", "Harrowgate", "Ishikawa", "Jankowski", "Kowalczyk", "Larkspur",
    "Moreau", "Northcott", "Oyelaran", "Prescott", "Rydell", "Stavros", "Tamura", "Vasquez",
    "Wexford", "Albright", "Bellamy", "Crane", "Drummond", "Esposito", "Fairbanks", "Grimaldi",
    "Hartigan", "Iverson", "Kaplan", "Lockhart", "Mancini", "Novak", "Ortega",
]  # fmt: skip
SURNAME_HEADS = [
    "Ash", "Black", "Brook", "Cald", "Dun", "East", "Fair", "Gold", "Hale", "Hart", "Kings",
    "Lang", "Mar", "North", "Oak", "Pen", "Ravens", "Sel", "Thorn", "Wald", "West", "Wyn",
]  # fmt: skip
SURNAME_TAILS = [
    "wood", "ley", "ford", "well", "more", "ton", "field", "croft", "by", "wick", "stone",
    "bury", "dale", "holt", "mere", "worth", "hurst", "combe",
]  # fmt: skip

# ------------------------------------------------------------------------------------
# Movie titles, production facts and the sentences that state the hidden attributes

TITLE_ADJ = [
    "Glass", "Silent", "Crimson", "Hollow", "Broken", "Golden", "Midnight", "Northern",
    "Forgotten", "Burning", "Quiet", "Iron", "Paper", "Silver", "Distant", "Wild", "Electric",
    "Frozen", "Hidden", "Endless", "Velvet", "Scarlet", "Lonely", "Restless", "Bitter",
    "Bright", "Falling", "Second", "Lost", "Painted", "Copper", "Salt", "Amber", "Sleeping",
    "Winter", "Last", "Secret", "Open", "Narrow", "Shattered",
]  # fmt: skip
TITLE_NOUN = [
    "Harbor", "Orchard", "Signal", "Crown", "River", "Garden", "Lantern", "Mirror", "Highway",
    "Promise", "Horizon", "Echo", "Frontier", "Kingdom", "Station", "Tide", "Cathedral",
    "Circus", "Compass", "Letter", "Summer", "Season", "Island", "Bridge", "Canyon", "Archive",
    "Empire", "Voyage", "Witness", "Stranger", "Daughter", "Machine", "Meridian", "Lighthouse",
    "Parade", "Reckoning", "Sparrow", "Verdict", "Anthem", "Threshold", "Quarry", "Pilgrim",
    "Carousel", "Monsoon", "Citadel", "Ember", "Labyrinth", "Wager",
]  # fmt: skip
PLACES = [
    "Vancouver", "Prague", "Budapest", "Lisbon", "Atlanta", "Glasgow", "Montreal", "Cape Town",
    "Auckland", "Seville", "Toronto", "New Orleans", "Albuquerque", "Belfast", "Malta",
    "Reykjavik", "Marrakesh", "Tbilisi", "Dublin", "Sofia", "Bucharest", "Queensland",
    "Valletta", "Naples", "Krakow", "Tallinn", "Vilnius", "Porto", "Bilbao", "Hokkaido",
]  # fmt: skip
STUDIOS = [
    "Northlight Pictures", "Bluewater Films", "Copperline Studios", "Meridian Entertainment",
    "Halcyon Media", "Red Kite Productions", "Stonebridge Pictures", "Aurora Road Films",
    "Lanternfish Studios", "Greyhaven Pictures", "Tall Pine Entertainment", "Driftwood Films",
]  # fmt: skip
FESTIVALS = [
    "Berlin International Film Festival", "Toronto International Film Festival",
    "Sundance Film Festival", "Venice Film Festival", "Tribeca Festival",
    "Locarno Film Festival", "Busan International Film Festival", "Telluride Film Festival",
]  # fmt: skip
MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]  # fmt: skip
ROLES = [
    "the lead", "a local official", "the narrator", "a mysterious neighbour", "an old mentor",
    "the younger sibling", "a shopkeeper", "a journalist", "a doctor", "the landlord",
]  # fmt: skip
TRIVIA = [
    "a storm destroyed part of the main set",
    "one of the leads broke a wrist and filming paused for a month",
    "the crew relocated twice because of permit problems",
    "two weeks of footage had to be reshot after a camera fault",
    "the original composer left the project",
    "the catering truck famously caught fire",
    "the director rewrote the final act on set",
    "a local family lent their house for several scenes",
]  # fmt: skip

# A plot sentence per item: a protagonist, a goal and a setting typical of the primary
# sub-genre (a Wikipedia plot section carries the genre in its content words).
PLOTS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "space opera": (["starship captain", "smuggler pilot", "rebel navigator", "exiled princess"],
                    ["must outrun an imperial fleet", "races to reach a distant colony",
                     "is drawn into a war between planets"],
                    ["a remote star system", "a crumbling orbital station", "the outer rim"]),
    "cyberpunk": (["hacker", "cybernetic mercenary", "rogue programmer", "street courier"],
                  ["breaks into a corporate network", "hunts a rogue artificial intelligence",
                   "steals a prototype neural implant"],
                  ["a neon megacity", "a surveillance state", "the data slums"]),
    "heist": (["safecracker", "retired thief", "con artist", "getaway driver"],
              ["plans to rob a casino vault", "assembles a crew for a diamond robbery",
               "tries to steal a priceless painting"],
              ["a heavily guarded bank", "a glittering casino", "an auction house"]),
    "detective mystery": (["detective", "police inspector", "amateur sleuth", "private eye"],
                          ["investigates a poisoning", "must find the killer before dawn",
                           "follows clues left at a murder scene"],
                          ["a snowbound manor", "a seaside village", "a locked library"]),
    "slasher": (["camp counselor", "babysitter", "college student", "lone survivor"],
                ["is stalked by a masked killer", "must escape a killer with a machete",
                 "watches friends vanish one by one"],
                ["an isolated summer camp", "a cabin in the woods", "a deserted campus"]),
    "supernatural horror": (["priest", "paranormal investigator", "widowed mother", "medium"],
                            ["confronts a vengeful spirit", "tries to banish a demon",
                             "hears whispers from the attic"],
                            ["a haunted mansion", "a cursed farmhouse", "an abandoned asylum"]),
    "romantic comedy": (["wedding planner", "struggling baker", "clumsy journalist", "florist"],
                        ["falls for a rival", "fakes an engagement",
                         "keeps bumping into a stranger"],
                        ["a busy city", "a holiday resort", "a small bookshop"]),
    "period romance": (["governess", "young heiress", "impoverished nobleman", "duchess"],
                       ["falls for a man below her station", "must choose between duty and love",
                        "exchanges secret letters with a suitor"],
                       ["a country estate", "a Victorian ballroom", "a Regency town house"]),
    "war epic": (["infantry sergeant", "young conscript", "field medic", "bomber pilot"],
                 ["leads a platoon behind enemy lines", "survives a brutal offensive",
                  "must hold a bridge against an enemy advance"],
                 ["the trenches", "a bombed-out city", "a beachhead under fire"]),
    "western": (["sheriff", "bounty hunter", "rancher", "gunslinger"],
                ["tracks an outlaw gang", "defends a frontier town",
                 "drives cattle across the plains"],
                ["a dusty frontier town", "the open prairie", "a desert canyon"]),
    "martial arts": (["kung fu student", "disgraced fighter", "temple monk", "street brawler"],
                     ["trains for a deadly tournament", "avenges a master", "fights a rival dojo"],
                     ["a mountain temple", "an underground fight club", "a crowded harbor town"]),
    "musical": (["chorus girl", "aspiring singer", "piano player", "dance troupe leader"],
                ["dreams of a Broadway stage", "puts on a show to save a theater",
                 "sings through heartbreak"],
                ["a backstage dressing room", "a vaudeville theater", "a jazz club"]),
    "animated adventure": (["young fox", "talking toy", "brave little robot", "runaway puppy"],
                           ["sets out to find a way home", "joins a band of animal friends",
                            "saves an enchanted forest"],
                           ["a magical forest", "a toy shop", "a cartoon kingdom"]),
    "high fantasy": (["young wizard", "dwarf warrior", "elf archer", "squire"],
                     ["must destroy a cursed sword", "battles a dragon", "seeks a lost crown"],
                     ["an enchanted kingdom", "a dark fortress", "misty elven woods"]),
    "courtroom drama": (["defense attorney", "public defender", "prosecutor", "juror"],
                        ["defends a man accused of murder", "exposes a lying witness",
                         "fights for a verdict"],
                        ["a crowded courtroom", "the jury room", "a small-town courthouse"]),
    "political satire": (["hapless senator", "spin doctor", "press secretary", "campaign manager"],
                         ["tries to cover up a scandal", "invents a fake war", "rigs an election"],
                         ["the capital", "a campaign bus", "a chaotic press office"]),
    "nature documentary": (["wildlife filmmaker", "marine biologist", "field researcher"],
                           ["follows a pride of lions", "tracks whales on their migration",
                            "films penguins through a winter"],
                           ["the savanna", "a coral reef", "the arctic tundra"]),
    "film noir": (["private eye", "femme fatale", "washed-up cop", "nightclub singer"],
                  ["is framed for a murder", "chases a double-crossing client",
                   "is lured into an insurance scam"],
                  ["rain-slicked streets", "a smoky nightclub", "a seedy hotel"]),
    "family comedy": (["frazzled dad", "mischievous twins", "babysitting grandma", "family dog"],
                      ["wrecks a family holiday", "causes chaos at a birthday party",
                       "must survive a road trip with the kids"],
                      ["a suburban home", "a crowded minivan", "a chaotic theme park"]),
    "disaster": (["seismologist", "firefighter", "airline pilot", "volcano expert"],
                 ["warns a city of an earthquake", "leads survivors from a flood",
                  "races ahead of a tidal wave"],
                 ["a coastal city", "a collapsing skyscraper", "a town below a volcano"]),
}  # fmt: skip

GENRE_TEMPLATES = [
    "At its core, the film is {a}.",
    "Critics have described it as {a} first and foremost.",
    "Most reviewers classified the picture as {a}.",
    "Underneath the marketing, this is unmistakably {a}.",
    "The studio pitched the project as {a}.",
    "{T} works as {a}, and it never pretends to be anything else.",
]
THEME_TEMPLATES = [
    "The story deals with {x}.",
    "Its central theme is {x}.",
    "Much of the screenplay revolves around {x}.",
    "The director has said the film is really about {x}.",
    "Beneath the plot lies a meditation on {x}.",
    "Viewers will notice how often the narrative returns to {x}.",
]
AUDIENCE_TEMPLATES = [
    "The film was made with {x} in mind.",
    "Marketing targeted {x}.",
    "It is squarely aimed at {x}.",
    "Test screenings showed it played best with {x}.",
    "The filmmakers said they wrote it for {x}.",
]
MOOD_TEMPLATES = [
    "The overall tone is {x}.",
    "Audiences tend to remember how {x} it feels.",
    "The mood throughout is {x}, from the opening scene to the credits.",
    "Critics called it {a} experience.",
    "Its atmosphere stays {x} almost all the way through.",
]

ACCLAIM_GOOD = [
    "It won the audience award at the {f}.",
    "Critics praised it widely, and it collected several award nominations.",
    "It is often listed among the best films of its year.",
]
ACCLAIM_BAD = [
    "Critical reception was largely negative.",
    "Reviews were poor, with many critics calling it forgettable.",
    "It was widely panned and quickly left theaters.",
]


# ------------------------------------------------------------------------------------
# News vocabulary

NEWS_TOPICS: list[tuple[str, str, str, list[str], list[str]]] = [
    # name, category, entity kind, headline phrases, body clauses
    ("football", "sports", "team",
     ["late winning goal", "league title race", "penalty shootout drama",
      "transfer window gamble", "derby defeat"],
     ["the striker scored twice before halftime", "the goalkeeper saved a late penalty",
      "the midfield struggled to keep possession", "supporters sang until the final whistle",
      "the manager blamed the referee for the defeat", "the club is chasing a new defender"]),
    ("basketball", "sports", "team",
     ["buzzer-beater", "playoff push", "triple-double night", "draft lottery surprise"],
     ["the point guard finished with a triple-double", "a buzzer-beater sealed the game",
      "the bench outscored the starters in the fourth quarter", "rebounds decided the contest",
      "the rookie forward dunked over two defenders",
      "the coach called a timeout to stop the run"]),
    ("elections", "news", "politician",
     ["tight polling race", "televised debate clash", "campaign trail stop", "ballot count delay"],
     ["voters head to the polls next month", "the campaign released a new attack ad",
      "polling shows the race within the margin of error", "turnout among young voters rose",
      "the candidates clashed over taxes in the debate",
      "election officials began counting ballots"]),
    ("climate", "news", "climate",
     ["record heat wave", "new emissions target", "rising sea levels", "wildfire season outlook"],
     ["scientists warned that emissions are still climbing",
      "the heat wave broke temperature records", "coastal towns are preparing for flooding",
      "the carbon reduction plan drew criticism", "glaciers are melting faster than predicted",
      "solar and wind capacity grew again this year"]),
    ("crime", "news", "police",
     ["police manhunt", "fraud trial verdict", "bank robbery arrest", "cold case breakthrough"],
     ["detectives arrested two suspects", "the jury returned a guilty verdict",
      "prosecutors filed fraud charges", "police asked witnesses to come forward",
      "the suspect was held without bail", "investigators reopened the decades-old case"]),
    ("technology", "news", "tech",
     ["smartphone launch", "data breach fallout", "artificial intelligence push",
      "chip shortage warning"],
     ["the new phone ships with a faster chip", "hackers exposed millions of passwords",
      "the software update adds machine learning features", "engineers unveiled a prototype",
      "the startup raised money for its chatbot", "semiconductor supplies remain tight"]),
    ("markets", "finance", "fund",
     ["stock market rally", "interest rate jitters", "quarterly earnings beat", "bond yield spike"],
     ["shares jumped after earnings beat forecasts", "investors fear another rate hike",
      "the index closed at a record high", "analysts cut their price targets",
      "the central bank held interest rates steady", "traders sold off bank stocks"]),
    ("personal finance", "finance", "person",
     ["retirement savings tips", "mortgage rates climb", "credit card debt trap",
      "tax refund checklist"],
     ["experts suggest saving a fixed share of each paycheck",
      "mortgage rates rose for a third week", "paying down high-interest debt first helps",
      "households can claim several overlooked deductions",
      "a simple budget can cut monthly spending", "retirement accounts offer tax advantages"]),
    ("celebrity", "lifestyle", "person",
     ["red carpet moment", "surprise engagement", "celebrity feud", "star's new look"],
     ["the actress wore a custom gown on the red carpet",
      "fans flooded social media after the engagement news",
      "the singer addressed the rumours in an interview", "paparazzi photographed the couple",
      "the reality star unveiled a dramatic new hairstyle",
      "the famous pair were seen on a yacht"]),
    ("movies", "movies", "studio",
     ["box office opening", "blockbuster sequel", "awards season contender", "trailer reveal"],
     ["the sequel topped the weekend box office", "critics praised the director's latest film",
      "the studio released a first trailer", "the cast reunited for the premiere",
      "the superhero film broke opening records", "the festival jury awarded its top prize"]),
    ("music", "music", "band",
     ["new album drop", "world tour dates", "chart-topping single", "festival lineup"],
     ["the band announced a world tour", "the single debuted at number one",
      "the album features several surprise collaborations", "tickets sold out within minutes",
      "the rapper released a surprise mixtape", "the guitarist left the group after a decade"]),
    ("health", "health", "medical",
     ["clinical trial results", "flu season warning", "breakthrough treatment", "vaccine update"],
     ["researchers reported promising trial results", "doctors urged patients to get vaccinated",
      "the new therapy reduced symptoms in most patients", "hospitals saw a rise in admissions",
      "the study linked poor diet to heart disease", "regulators approved a new cancer drug"]),
    ("fitness", "health", "coach",
     ["home workout routine", "marathon training plan", "sleep and recovery", "strength habits"],
     ["trainers recommend short daily workouts", "runners should build mileage slowly",
      "stretching after exercise reduces soreness", "a consistent sleep schedule aids recovery",
      "squats and lunges build leg strength", "yoga improves balance and flexibility"]),
    ("travel", "travel", "place",
     ["hidden beach towns", "cheap flight deals", "national park guide", "weekend city break"],
     ["the coastal village is quiet outside the summer season",
      "airfares dropped for winter departures", "hiking trails reopened after repairs",
      "the old town is best explored on foot", "the island ferry runs twice a day",
      "budget hotels fill quickly during festivals"]),
    ("food", "foodanddrink", "chef",
     ["easy weeknight recipe", "holiday baking guide", "new restaurant opening", "comfort food"],
     ["the recipe takes thirty minutes and one pan", "bakers should chill the dough overnight",
      "the chef opened a second restaurant downtown", "roasted vegetables add depth to the dish",
      "the soup freezes well for busy weeks", "the bakery sells out of croissants by noon"]),
    ("autos", "autos", "carmaker",
     ["electric pickup debut", "vehicle recall", "fuel economy ratings", "sports car review"],
     ["the electric truck offers a longer driving range", "the recall affects older models",
      "the sedan earned top fuel economy marks", "dealers report long waiting lists",
      "the sports car reaches sixty in under four seconds",
      "the carmaker will build a new battery plant"]),
]  # fmt: skip
HEADLINE_TEMPLATES = [
    "{E} reacts to {h}", "{E} faces questions after {h}", "Inside {E}'s {h}",
    "What {E}'s {h} means for you", "{E} and the {h}: what we know", "{h}: {E} speaks out",
]  # fmt: skip
NEWS_FILLER = [
    "The announcement came late on {day}.", "More details are expected in the coming days.",
    "A spokesperson declined to comment further.", "This story has been updated.",
    "Readers shared the report widely on {day}.", "The full statement was posted online.",
    "Local reporters followed the story from {city}.",
    "It was not immediately clear what comes next.",
]  # fmt: skip
NEWS_BODY_TEMPLATES = [
    "Reports say {b}.", "According to people familiar with the matter, {b}.",
    "On {day}, {b}.", "{B}, officials in {city} confirmed.", "Observers noted that {b}.",
]  # fmt: skip
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ENTITY_SUFFIX = {
    "team": ["FC", "Hawks", "Rovers", "Comets", "Titans", "United", "Wolves", "Mariners"],
    "tech": ["Labs", "Systems", "Software", "Robotics", "Networks"],
    "fund": ["Capital", "Holdings", "Partners", "Bancorp", "Securities"],
    "carmaker": ["Motors", "Automotive", "Cars", "Autoworks"],
    "climate": ["Climate Institute", "Environmental Agency", "Ocean Council"],
    "police": ["Police Department", "Sheriff's Office", "District Court"],
    "medical": ["Medical Center", "Health Institute", "University Hospital"],
    "studio": ["Studios", "Pictures", "Films"],
    "band": ["Collective", "Brothers", "Orchestra", "Sound"],
    "place": ["Bay", "Valley", "Springs", "Island", "Heights"],
}
PERSON_TITLES = {"politician": "Senator", "chef": "Chef", "coach": "Coach", "person": ""}


# ------------------------------------------------------------------------------------
# Phrases


def article(phrase: str) -> str:
    """``phrase`` with "a" or "an" in front."""
    return ("an " if phrase[0].lower() in "aeiou" else "a ") + phrase


def person(rng: np.random.Generator) -> str:
    """An invented name (the surname from a pool of ~400, or a fixed list)."""
    if rng.random() < 0.5:
        last = pick(rng, SURNAME_HEADS) + pick(rng, SURNAME_TAILS)
    else:
        last = pick(rng, LAST_NAMES)
    return f"{pick(rng, FIRST_NAMES)} {last}"
