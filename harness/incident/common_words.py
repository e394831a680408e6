"""Words that are never learned as a caller's name, in two strengths.

:data:`STOP_WORDS` are never a name, whatever their case: function words, pronouns, days,
months, greetings, titles, number words and the clinic line's own vocabulary.
:data:`COMMON_WORDS` are ordinary English words: in lower-case text (a recogniser's
transcript) they are not learned, because nothing tells ``call me back`` from
``call me Maria``; in cased text a capitalised one mid-sentence may be (``This is Will``),
and is then matched only with its capital (``Will``, not ``will``).
"""

from __future__ import annotations

__all__ = ["COMMON_WORDS", "STOP_WORDS", "is_common", "is_stop"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOP_WORDS: frozenset[str] = _words(
    """
    a an the and or but nor so yet if then than that this these those there here where when
    what which who whom whose why how whether while because since until unless though
    although as at by for from in into of off on onto out over under up down to with within
    without about above after before again against along among around away back behind below
    beneath beside besides between beyond during except inside near next outside past per
    through throughout till toward towards upon via
    i me my mine myself you your yours yourself yourselves he him his himself she her hers
    herself it its itself we us our ours ourselves they them their theirs themselves one ones
    someone somebody something anyone anybody anything everyone everybody everything noone
    nobody nothing none each every either neither both all any some many much more most few
    less least other others another such own same
    am is are was were be been being have has had having do does did doing done will would
    shall should can could may might must ought need dare let lets let's
    i'm im i've ive i'd id i'll ill you're youre you've you'd you'll he's she's it's its
    it'd it'll we're we've we'd we'll they're they've they'd they'll that's thats there's
    theres here's heres what's whats who's whos where's wheres how's hows isn't aren't wasn't
    weren't don't doesn't didn't won't wouldn't can't cannot couldn't shouldn't haven't
    hasn't hadn't mustn't dont doesnt didnt wont cant couldnt shouldnt isnt arent wasnt
    not no yes yeah yep yup nope nah ok okay alright right sure fine well oh ah uh um umm er
    erm hmm mm mhm huh hey hi hello hiya bye goodbye thanks thank cheers please sorry pardon
    excuse welcome morning afternoon evening night day today tonight tomorrow yesterday
    week weekend month year time times date dates hour hours minute minutes second seconds
    now later soon early earlier late already still just only also too very really quite
    even ever never always often sometimes usually maybe perhaps probably actually basically
    literally definitely certainly absolutely exactly totally simply again once twice
    monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur thurs
    fri sat sun mondays tuesdays wednesdays thursdays fridays saturdays sundays
    january february march april june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec
    zero oh one two three four five six seven eight nine ten eleven twelve thirteen fourteen
    fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy
    eighty ninety hundred thousand million double triple half quarter
    first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth
    thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth
    thirtieth last
    am pm a.m. p.m. noon midnight o'clock oclock
    mr mrs ms miss mx dr doctor doc prof professor sir madam maam ma'am mister missus mrs.
    mr. ms. dr. sr jr
    name names surname firstname lastname called calling caller speaking speak here
    patient patients customer client guest user contact person people
    phone number numbers mobile cell email mail address street road avenue zip postcode
    postal code box
    appointment appointments booking bookings book booked cleaning cleanings checkup
    checkups check exam examination filling fillings cavity whitening teeth tooth dentist
    dental clinic hygienist surgery office reception receptionist practice
    cancel cancellation reschedule confirm confirmation available availability opening
    openings slot slots schedule
    bright smile
    apologies gotcha indeed fantastic brilliant awesome oops however meanwhile anyway
    anyhow besides furthermore moreover otherwise unfortunately fortunately luckily
    hopefully honestly seriously obviously clearly understood noted done great perfect
    excellent wonderful lovely super cool nice good bad sorry thanks thankyou
    anytime whenever wherever whoever everywhere somewhere nowhere sometime someday
    congratulations regards kind best warm warmest sincerely
    dot underscore dash hyphen period com net org gmail yahoo hotmail outlook icloud aol
    """
)
"""Never a name."""

COMMON_WORDS: frozenset[str] = STOP_WORDS | _words(
    """
    able about above accept actually add after afraid again age ago agree ahead air allow
    almost alone along already alright also anyway apart apparently appreciate area arm
    arrive arriving ask asked asking asleep assume attend available avoid awake aware awful
    baby bad badly bag bank bar base basic bath bathroom be bear beat beautiful become bed
    begin beginning behind believe best better big bill bit bite black blood blue board body
    bone bored boring born borrow boss bottom bought bound box boy brain break breakfast
    bring broken brother brought brown brush budget build building bus business busy buy
    cake call calls came car card care careful carry case cash catch caught cause center
    centre chair chance change changed charge cheap check child children choice choose
    church city class clean clear clearly clock close closed closer clothes coffee cold
    college color colour come comes coming company complete completely computer concern
    condition consider continue cool copy corner correct cost could count country couple
    course cover crazy cross cry cup cut dad daily damage dark daughter dead deal dear
    decide deep deliver dental depend describe desk detail details die different difficult
    dinner direct directly discuss doctor dog dollar dollars door down dream dress drink
    drive driving drop during dry due each ear early easily easy eat eating edge effect
    effort else emergency empty end ending enjoy enough enter entire especially evening
    event exactly example excellent excited exciting expect expensive experience explain
    extra eye eyes face fact fair fall family far fast father fault favorite favourite fear
    feel feeling fees few field fight figure fill final finally find fine finger finish
    finished fire fit fix flat floor fly follow food foot forget forgot form forward free
    fresh friend friends front full fun funny further future game garden gave general get
    gets getting girl give given glad go goes going gone good got great green ground group
    grow guess guy hair half hand handle hands hang happen happened happy hard hate head
    health healthy hear heard hearing heart heavy held help helpful hi high hold holding
    holiday home hope hoping hospital hot house huge hurt hurts husband idea ill important
    include including info information inside instead insurance interest interested
    invoice issue job join joke keep kept key kid kids kind kinda kitchen knew know known
    lady large later laugh learn leave leaving left leg less letter level lie life light
    like likely line list listen little live lives living local lock long look looking
    lose lost lot lots loud love lovely low lucky lunch made main make makes making man
    manage many market married matter mean means meant medical medicine meet meeting
    member message met middle might mind minor miss missed missing mom moment money mother
    mouth move moving much mum music must near nearly neck need needed needs nervous new
    news nice nobody noise normal nose note notice number nurse offer office often old
    older open opening order other otherwise outside pain paid paper parent park part
    particular party pass pay paying payment pen perfect perfectly person pick picture
    piece place plan plane plans play pleasant please plenty point police poor possible
    possibly post pound pounds practice prefer pretty price private problem problems
    process promise proper properly quick quickly quiet rather reach read ready real reason
    receive recent recently record red regular regarding relax remember remind rent repeat
    reply request rest result return review ring rock room round rule run running safe said
    sale same save saw say saying says school seat second see seem seems seen sell send
    sense sent serious service set several shall short shot show shower sick side sign
    simple since sister sit sitting size sleep slow slowly small smart so soft sold some
    son song soon sore sorry sort sound sounds speak special spend spoke spot staff stand
    start started state stay step stick stop store story straight strange street strong
    stuck student study stuff stupid style such suggest suit summer sure surprise sweet
    swollen table take taken taking talk talking tea team tell telling test text than that
    their thing things think thinking thought through throw ticket tight tired together
    told top total touch town train travel treat treatment tried true trust truth try trying
    turn type ugly understand unfortunately unit until upset urgent use used useful usual
    usually visit voice wait waiting wake walk want wanted wanting wants warm wash watch
    water way wear weather wedding weird went whatever whenever white whole wife win window
    winter wish woman wonder wondering wonderful word words work worked working works world
    worried worry worse worst worth write wrong yellow young
    will may june april august grace hope joy faith rose mark bill art sue pat dawn summer
    autumn ray jack frank rich penny sandy rusty holly ivy iris daisy amber ruby crystal
    chase hunter bishop cook baker
    loose wisdom molar molars gum gums crown crowns root canal implant implants braces
    denture dentures xray x-ray bleeding tender numb infection infected abscess pain
    painful ache aching toothache chipped cracked retainer floss mouthwash copay
    deductible referral prescription antibiotics jaw lip lips tongue cheek swelling
    sensitive sensitivity hygiene polish scale visit visits new existing regular routine
    """
)
"""Ordinary English words (a superset of :data:`STOP_WORDS`)."""

_SUFFIXES = ("ing", "ly", "ed", "ful", "able", "ous", "ive", "ness", "ment", "tion")


def is_stop(word: str) -> bool:
    """Whether ``word`` is never a name."""
    return word.casefold().strip(".'’") in STOP_WORDS


def is_common(word: str) -> bool:
    """Whether ``word`` is an ordinary English word (or shaped like one: ``-ing``, ``-ly``...)."""
    w = word.casefold().strip(".'’")
    if w in COMMON_WORDS:
        return True
    return len(w) >= 6 and w.endswith(_SUFFIXES)
