"""Writes `paraphrase_pairs.jsonl`: labelled pairs of user messages for the semantic
cache's threshold. Written for this project by hand (no outside dataset): groups of
paraphrases of requests applications send (label 1: one answer serves both), and near
misses that must not share an answer (label 0), by kind: numbers, negation, entities,
opposites, comparatives, units and dates, and different questions on one topic.

    python benchmarks/data/make_paraphrase_pairs.py
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

PARAPHRASES = [
    [
        "What is the capital of France?",
        "What's the capital of France?",
        "Which city is the capital of France?",
    ],
    [
        "How do I reverse a list in Python?",
        "How can I reverse a list in Python?",
        "What is the way to reverse a list in Python?",
    ],
    [
        "How do I reset my password?",
        "How can I reset my password?",
        "What are the steps to reset my password?",
    ],
    ["What are your opening hours?", "What are your business hours?", "When are you open?"],
    [
        "Can I get a refund for my order?",
        "Is it possible to get a refund for my order?",
        "Could I get my money back for my order?",
    ],
    [
        "How long does shipping take?",
        "How long will shipping take?",
        "How many days does shipping take?",
    ],
    [
        "Translate 'good morning' into Spanish.",
        "Translate 'good morning' to Spanish.",
        "How do you say 'good morning' in Spanish?",
    ],
    [
        "What is the boiling point of water?",
        "At what temperature does water boil?",
        "What's the boiling point of water?",
    ],
    ["Explain what a REST API is.", "What is a REST API?", "Can you explain what a REST API is?"],
    [
        "How do I cancel my subscription?",
        "How can I cancel my subscription?",
        "What do I do to cancel my subscription?",
    ],
    [
        "What is the difference between a list and a tuple in Python?",
        "What's the difference between a list and a tuple in Python?",
        "How does a list differ from a tuple in Python?",
    ],
    [
        "Who wrote Pride and Prejudice?",
        "Who is the author of Pride and Prejudice?",
        "Who's the author of Pride and Prejudice?",
    ],
    [
        "How many continents are there?",
        "How many continents are there on Earth?",
        "What is the number of continents?",
    ],
    [
        "Summarize the benefits of regular exercise.",
        "Summarise the benefits of regular exercise.",
        "Give me a summary of the benefits of regular exercise.",
    ],
    [
        "How do I change my shipping address?",
        "How can I change my shipping address?",
        "How do I update my shipping address?",
    ],
    [
        "What does HTTP stand for?",
        "What is HTTP short for?",
        "What does the acronym HTTP stand for?",
    ],
    [
        "Write a haiku about autumn.",
        "Compose a haiku about autumn.",
        "Write me a haiku about autumn.",
    ],
    [
        "How do I sort a dictionary by value in Python?",
        "How can I sort a dictionary by value in Python?",
        "What's the best way to sort a dictionary by value in Python?",
    ],
    [
        "What is photosynthesis?",
        "Explain photosynthesis.",
        "Can you explain what photosynthesis is?",
    ],
    ["Where can I find my invoice?", "Where do I find my invoice?", "How can I find my invoice?"],
    ["Is my data encrypted?", "Do you encrypt my data?", "Is my data stored encrypted?"],
    [
        "What payment methods do you accept?",
        "Which payment methods do you accept?",
        "What forms of payment do you accept?",
    ],
    [
        "How do I create a virtual environment in Python?",
        "How can I create a virtual environment in Python?",
        "How do I make a Python virtual environment?",
    ],
    ["What is machine learning?", "Explain machine learning.", "What's machine learning?"],
    [
        "Give me three tips for better sleep.",
        "What are three tips for better sleep?",
        "Share three tips for sleeping better.",
    ],
    [
        "How do I contact customer support?",
        "How can I contact customer support?",
        "How do I reach customer support?",
    ],
    [
        "What is the tallest mountain in the world?",
        "Which is the tallest mountain in the world?",
        "What's the highest mountain in the world?",
    ],
    [
        "How do I delete my account?",
        "How can I delete my account?",
        "What are the steps to delete my account?",
    ],
    [
        "Write a SQL query that counts rows in the orders table.",
        "Write an SQL query to count the rows in the orders table.",
        "Give me a SQL query that counts the rows of the orders table.",
    ],
    ["What is the speed of light?", "How fast does light travel?", "What's the speed of light?"],
    [
        "Can you recommend a good book on statistics?",
        "Recommend a good book on statistics.",
        "What's a good book on statistics?",
    ],
    [
        "How do I merge two branches in git?",
        "How can I merge two branches in git?",
        "What's the command to merge two branches in git?",
    ],
    [
        "Does the jacket come in other colors?",
        "Does the jacket come in other colours?",
        "Is the jacket available in other colors?",
    ],
    [
        "What is the return policy?",
        "What's your return policy?",
        "Tell me about the return policy.",
    ],
    [
        "Explain the difference between TCP and UDP.",
        "What is the difference between TCP and UDP?",
        "How does TCP differ from UDP?",
    ],
    [
        "What year did World War II end?",
        "When did World War II end?",
        "In what year did World War II end?",
    ],
    [
        "How do I upgrade my plan?",
        "How can I upgrade my plan?",
        "How do I upgrade to a higher plan?",
    ],
    ["What is a black hole?", "Explain what a black hole is.", "What's a black hole?"],
    [
        "How do I read a CSV file with pandas?",
        "How can I read a CSV file using pandas?",
        "How do I load a CSV file in pandas?",
    ],
    ["Is the store open on Sundays?", "Are you open on Sundays?", "Is the shop open on Sunday?"],
]
NEGATIVES = {
    "numbers": [
        ("Convert 5 km to miles.", "Convert 50 km to miles."),
        ("What is 15% of 200?", "What is 15% of 300?"),
        ("Give me three tips for better sleep.", "Give me five tips for better sleep."),
        ("I want to order 2 pizzas.", "I want to order 3 pizzas."),
        ("Write a 100-word story about a cat.", "Write a 500-word story about a cat."),
        ("What is 12 times 12?", "What is 12 times 13?"),
        ("Convert 30 degrees Celsius to Fahrenheit.", "Convert 40 degrees Celsius to Fahrenheit."),
        ("What is the square root of 144?", "What is the square root of 169?"),
        ("Is 97 a prime number?", "Is 91 a prime number?"),
        ("Track order 48213.", "Track order 48231."),
        ("What happened in 1969?", "What happened in 1968?"),
        ("List the first 10 prime numbers.", "List the first 20 prime numbers."),
        ("How much is 100 USD in euros?", "How much is 1000 USD in euros?"),
        ("Book a table for 4 at 7pm.", "Book a table for 4 at 8pm."),
        ("What is the factorial of 6?", "What is the factorial of 7?"),
        ("Give me a 3-day itinerary for Rome.", "Give me a 7-day itinerary for Rome."),
        ("Set a timer for 15 minutes.", "Set a timer for 50 minutes."),
        ("What's 2 to the power of 10?", "What's 2 to the power of 16?"),
        ("Translate chapter 3 into German.", "Translate chapter 4 into German."),
        ("What is the 5th Fibonacci number?", "What is the 50th Fibonacci number?"),
    ],
    "negation": [
        ("Is it safe to eat raw eggs?", "Is it not safe to eat raw eggs?"),
        ("Which foods contain gluten?", "Which foods do not contain gluten?"),
        (
            "Write a function that returns true if a number is even.",
            "Write a function that returns true if a number is not even.",
        ),
        ("List countries that use the euro.", "List countries that don't use the euro."),
        ("Why should I use TypeScript?", "Why shouldn't I use TypeScript?"),
        ("Can I take ibuprofen with alcohol?", "Can I not take ibuprofen with alcohol?"),
        ("Show me vegan recipes with nuts.", "Show me vegan recipes without nuts."),
        ("Which animals are mammals?", "Which animals are not mammals?"),
        ("I want to subscribe to the newsletter.", "I don't want to subscribe to the newsletter."),
        ("Find hotels with free cancellation.", "Find hotels without free cancellation."),
        ("Explain why the test passes.", "Explain why the test never passes."),
        ("What should I do before the interview?", "What should I never do before the interview?"),
        ("Is the package delivered?", "Is the package not delivered?"),
        ("Which plans include support?", "Which plans exclude support?"),
        ("Do I need a visa for Japan?", "Do I not need a visa for Japan?"),
    ],
    "opposites": [
        ("Is this mushroom safe?", "Is this mushroom unsafe?"),
        ("Is it legal to record phone calls?", "Is it illegal to record phone calls?"),
        ("Why is the connection secure?", "Why is the connection insecure?"),
        (
            "How do I enable two-factor authentication?",
            "How do I disable two-factor authentication?",
        ),
        ("Is this behaviour likely?", "Is this behaviour unlikely?"),
        ("How do I encrypt a file?", "How do I decrypt a file?"),
        ("Is the answer correct?", "Is the answer incorrect?"),
        ("How do I mount a drive?", "How do I unmount a drive?"),
        ("Is the medication approved?", "Is the medication disapproved?"),
        ("When is the data available?", "When is the data unavailable?"),
        ("How do I lock my screen?", "How do I unlock my screen?"),
        ("Why is the function pure?", "Why is the function impure?"),
    ],
    "comparatives": [
        ("Which is the largest planet?", "Which is the smallest planet?"),
        ("What is the maximum file size?", "What is the minimum file size?"),
        ("How do I increase my credit limit?", "How do I decrease my credit limit?"),
        (
            "What happened before the French Revolution?",
            "What happened after the French Revolution?",
        ),
        ("Which is the best plan for teams?", "Which is the worst plan for teams?"),
        ("List the first steps of onboarding.", "List the last steps of onboarding."),
        ("Which stocks went up today?", "Which stocks went down today?"),
        ("What is the highest mountain in Europe?", "What is the lowest point in Europe?"),
        ("Is Python faster than Java?", "Is Python slower than Java?"),
        ("Show me cheaper flights to Paris.", "Show me more expensive flights to Paris."),
    ],
    "entities": [
        ("What is the capital of France?", "What is the capital of Spain?"),
        ("Who is the CEO of Apple?", "Who is the CEO of Microsoft?"),
        ("How do I reverse a list in Python?", "How do I reverse a list in JavaScript?"),
        ("Translate 'good morning' into Spanish.", "Translate 'good morning' into French."),
        ("What is the population of Canada?", "What is the population of Australia?"),
        ("Summarize the plot of Hamlet.", "Summarize the plot of Macbeth."),
        ("When was Einstein born?", "When was Newton born?"),
        ("What time is it in Tokyo?", "What time is it in London?"),
        ("Write an email to Sarah about the meeting.", "Write an email to John about the meeting."),
        ("How do I install Docker on Ubuntu?", "How do I install Docker on Windows?"),
        ("What is the currency of Japan?", "What is the currency of China?"),
        ("Compare AWS and Azure.", "Compare AWS and Google Cloud."),
        ("What does Shopify charge per transaction?", "What does Stripe charge per transaction?"),
        ("Explain React hooks.", "Explain Vue hooks."),
        ("How tall is the Eiffel Tower?", "How tall is the Empire State Building?"),
    ],
    "units_and_dates": [
        ("Convert 5 miles to kilometers.", "Convert 5 kilometers to miles."),
        ("What's the weather tomorrow?", "What's the weather today?"),
        ("Schedule the call for Monday.", "Schedule the call for Friday."),
        ("How many grams in a pound?", "How many grams in an ounce?"),
        ("Show sales for January.", "Show sales for February."),
        ("Convert 10 euros to dollars.", "Convert 10 dollars to euros."),
        ("What are the events this weekend?", "What are the events next weekend?"),
        ("How many hours are in a week?", "How many hours are in a month?"),
    ],
    "same_topic_other_question": [
        ("How do I reset my password?", "How do I change my username?"),
        ("What is the return policy?", "What is the shipping policy?"),
        ("How do I sort a list in Python?", "How do I shuffle a list in Python?"),
        ("What are the symptoms of flu?", "What are the treatments for flu?"),
        ("How do I create a git branch?", "How do I delete a git branch?"),
        ("What is the boiling point of water?", "What is the freezing point of water?"),
        ("Write a poem about the sea.", "Write a story about the sea."),
        ("How do I open a bank account?", "How do I close a bank account?"),
        ("What is a mortgage?", "What is a mortgage rate?"),
        ("Explain supervised learning.", "Explain unsupervised learning."),
        ("How do I add a user to the team?", "How do I remove a user from the team?"),
        ("What are the side effects of aspirin?", "What is the dosage of aspirin?"),
        ("How do I import a CSV into Excel?", "How do I export a CSV from Excel?"),
        ("Who won the 2018 World Cup?", "Who hosted the 2018 World Cup?"),
        ("What's the best way to learn Spanish?", "What's the best way to teach Spanish?"),
    ],
}


# Held out: written after the guard (gateway/cache/guard.py) and the default threshold were
# settled on the pairs above, and not used to change either.
HELD_OUT_PARAPHRASES = [
    [
        "How do I export my contacts?",
        "How can I export my contacts?",
        "What's the way to export my contacts?",
    ],
    [
        "What is the weather like in Berlin?",
        "How is the weather in Berlin?",
        "What's the weather in Berlin like?",
    ],
    [
        "Can you help me write a cover letter?",
        "Could you help me write a cover letter?",
        "Help me write a cover letter.",
    ],
    ["What is inflation?", "Explain inflation.", "Can you explain what inflation is?"],
    ["How do I install numpy?", "How can I install numpy?", "What's the command to install numpy?"],
    ["Why is the sky blue?", "What makes the sky blue?", "Why does the sky look blue?"],
    ["Where is my order?", "Where's my order?", "Can you tell me where my order is?"],
    [
        "How do I undo the last git commit?",
        "How can I undo my last git commit?",
        "What's the way to undo the last commit in git?",
    ],
    [
        "What does a product manager do?",
        "What is the role of a product manager?",
        "What are the responsibilities of a product manager?",
    ],
    ["Give me a recipe for pancakes.", "Share a pancake recipe.", "How do I make pancakes?"],
    [
        "Is there a student discount?",
        "Do you offer a student discount?",
        "Do you have a discount for students?",
    ],
    [
        "How do I center a div in CSS?",
        "How can I center a div with CSS?",
        "What's the way to center a div in CSS?",
    ],
]
HELD_OUT_NEGATIVES = {
    "numbers": [
        ("Split the bill of 120 between 4 people.", "Split the bill of 120 between 3 people."),
        ("What is 7% interest on 1000?", "What is 9% interest on 1000?"),
        ("Write two sentences about dogs.", "Write ten sentences about dogs."),
        ("How many calories are in 2 eggs?", "How many calories are in 6 eggs?"),
        ("Refund invoice 7781.", "Refund invoice 7718."),
    ],
    "negation": [
        ("Which cities have a metro?", "Which cities have no metro?"),
        ("Should I update the driver?", "Should I not update the driver?"),
        ("List the tests that passed.", "List the tests that never passed."),
        ("Which drinks contain caffeine?", "Which drinks don't contain caffeine?"),
    ],
    "opposites": [
        ("Is the account active?", "Is the account inactive?"),
        ("How do I install the app?", "How do I uninstall the app?"),
        ("Why is the result valid?", "Why is the result invalid?"),
        ("How do I connect the printer?", "How do I disconnect the printer?"),
        ("Is this wood flammable?", "Is this wood nonflammable?"),
    ],
    "comparatives": [
        ("Which phone has the longest battery life?", "Which phone has the shortest battery life?"),
        ("What is the oldest university in Europe?", "What is the newest university in Europe?"),
        ("How do I make the font bigger?", "How do I make the font smaller?"),
        ("Show the earliest flights to Madrid.", "Show the latest flights to Madrid."),
    ],
    "entities": [
        ("What is the capital of Italy?", "What is the capital of Portugal?"),
        ("Who founded Amazon?", "Who founded Netflix?"),
        ("Translate this into Japanese.", "Translate this into Korean."),
        ("How do I deploy to Heroku?", "How do I deploy to Vercel?"),
        ("What is the GDP of India?", "What is the GDP of Brazil?"),
    ],
    "units_and_dates": [
        ("Convert 3 liters to gallons.", "Convert 3 gallons to liters."),
        ("What meetings do I have tomorrow?", "What meetings do I have yesterday?"),
        ("How many seconds are in a day?", "How many seconds are in a year?"),
        ("Show revenue for March.", "Show revenue for April."),
    ],
    "same_topic_other_question": [
        ("How do I bake bread?", "How do I store bread?"),
        ("What is the price of the pro plan?", "What features are in the pro plan?"),
        ("How do I rename a file in Linux?", "How do I copy a file in Linux?"),
        ("What causes migraines?", "How are migraines treated?"),
        ("Write a limerick about cats.", "Write a sonnet about cats."),
    ],
}


def pairs(groups: list[list[str]], negatives: dict[str, list[tuple[str, str]]]
          ) -> list[dict[str, object]]:  # fmt: skip
    rows: list[dict[str, object]] = []
    for group in groups:
        for a, b in itertools.combinations(group, 2):
            rows.append({"a": a, "b": b, "label": 1, "kind": "paraphrase"})
    for kind, items in negatives.items():
        for a, b in items:
            rows.append({"a": a, "b": b, "label": 0, "kind": kind})
    return rows


if __name__ == "__main__":
    for name, rows in (
        ("paraphrase_pairs.jsonl", pairs(PARAPHRASES, NEGATIVES)),
        ("paraphrase_pairs_heldout.jsonl", pairs(HELD_OUT_PARAPHRASES, HELD_OUT_NEGATIVES)),
    ):
        out = Path(__file__).with_name(name)
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{out}: {len(rows)} pairs ({sum(r['label'] == 1 for r in rows)} should share)")
