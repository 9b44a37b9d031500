"""The `notes` task: invented status notes whose facts are asked back, every answer in its note and never in its
query, each note about its own project, train and test disjoint in projects and people, the test split fixed by
(seed, n_test)."""

from promptgd.data.tasks import load_task


def test_every_answer_is_in_its_note_and_not_in_its_query():
    splits = load_task("notes", 40, 40, 0)
    assert len(splits.train) == len(splits.test) == 40
    for triple in splits.train + splits.test:
        assert triple.response.startswith(" ") and triple.response.strip() in triple.context
        assert triple.response.strip() not in triple.query
        project = triple.context.split(" status,")[0]  # "Project X"
        assert project in triple.query  # the query names the note it is about


def test_train_and_test_share_no_project_and_no_person_and_test_depends_only_on_its_size_and_seed():
    splits = load_task("notes", 200, 200, 0)

    def projects(triples):
        return {t.context.split(" status,")[0] for t in triples}

    assert not projects(splits.train) & projects(splits.test)
    leads = {t.response for t in splits.test if "led by" in t.query}
    assert leads and not leads & {t.response for t in splits.train if "led by" in t.query}
    assert load_task("notes", 8, 200, 0).test == splits.test
    assert load_task("notes", 8, 200, 1).test != splits.test
