/* Retrieval quality on the labelled set that ships in tests/store/labelled/:
 * hybrid search (RRF of BM25 and the built-in embedder) must rank at least
 * as well as the better of the two alone (nDCG@10), and each must be far
 * better than chance. The numbers are printed. */
#include "harness.h"
#include "labelled_eval.h"

static le_scores eval_mode(ac_store *s, const char *mode)
{
    le_scores sc;
    ASSERT_MSG(le_eval(s, LABELLED_DIR, mode, &sc, NULL) == 0, "evaluation failed: %s", ac_errmsg());
    return sc;
}

TEST(hybrid_ranks_at_least_as_well_as_bm25_or_vector_alone)
{
    ac_core *c = NULL;
    ac_store *s = NULL;
    le_scores h, b, v;
    ASSERT_OK(ac_core_open(NULL, &c));
    ASSERT_OK(ac_store_open(c, "labelled", NULL, &s));
    ASSERT_EQ_INT(60, le_load_docs(s, LABELLED_DIR));
    b = eval_mode(s, "bm25");
    v = eval_mode(s, "vector");
    h = eval_mode(s, "hybrid");
    printf("  %d queries   nDCG@10  recall@10\n", h.nqueries);
    printf("  bm25         %.4f   %.4f\n", b.ndcg10, b.recall10);
    printf("  vector       %.4f   %.4f\n", v.ndcg10, v.recall10);
    printf("  hybrid       %.4f   %.4f\n", h.ndcg10, h.recall10);
    ASSERT_EQ_INT(50, h.nqueries);
    ASSERT(b.ndcg10 > 0.5 && v.ndcg10 > 0.5);
    ASSERT_MSG(h.ndcg10 >= b.ndcg10 && h.ndcg10 >= v.ndcg10,
               "hybrid %.4f < max(bm25 %.4f, vector %.4f)", h.ndcg10, b.ndcg10, v.ndcg10);
    ASSERT(h.recall10 >= b.recall10 && h.recall10 >= v.recall10);
    ac_store_close(s);
    ac_core_close(c);
}

TEST_MAIN_WITH(th_errmsg_hook = ac_errmsg)
