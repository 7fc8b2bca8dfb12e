/* Our own implementation of the subset of the FAISS C API that libagentcore
 * calls, for platforms whose FAISS package ships the C API headers but not the
 * compiled libfaiss_c (Debian 12's libfaiss-dev 1.7.3).
 *
 * The signatures come from the installed faiss/c_api headers. Every definition
 * sits in an extern "C" block, so a definition that disagrees with its
 * declaration in those headers is a compile error rather than a silent C++
 * overload.
 *
 * Conventions kept from the C API:
 *  - opaque handles are the C++ objects themselves (FaissIndex* is a
 *    faiss::Index*, FaissIDSelector* a faiss::IDSelector*, ...);
 *  - functions return 0 on success, -2 (FAISS_EXCEPT) when faiss threw a
 *    faiss::FaissException, -4 (STD_EXCEPT) for another std::exception and
 *    -1 (UNKNOWN_EXCEPT) for anything else;
 *  - the message of the last failure is kept per thread and returned by
 *    faiss_get_last_error() (NULL if this thread never had a failure). It
 *    stays valid until the next failure on the same thread.
 */

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/faiss_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include <faiss/AutoTune.h>
#include <faiss/Index.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <cstdint>
#include <exception>
#include <new>
#include <string>
#include <type_traits>

static_assert(std::is_same<faiss::Index::idx_t, idx_t>::value,
              "faiss C++ idx_t and C API idx_t must be the same type");
static_assert(sizeof(faiss_component_t) == sizeof(float), "components are float");

namespace {

thread_local std::string last_error;
thread_local bool has_last_error = false;

void set_error(const char *msg)
{
    try {
        last_error.assign(msg ? msg : "unknown error");
    } catch (...) {
        /* Out of memory while recording the message: keep a short one. */
        last_error.clear();
    }
    has_last_error = true;
}

/* Runs fn and maps whatever it throws to the C API's error codes. */
template <typename Fn>
int guarded(Fn &&fn) noexcept
{
    try {
        fn();
        return OK;
    } catch (const faiss::FaissException &e) {
        set_error(e.what());
        return FAISS_EXCEPT;
    } catch (const std::exception &e) {
        set_error(e.what());
        return STD_EXCEPT;
    } catch (...) {
        set_error("Unknown error");
        return UNKNOWN_EXCEPT;
    }
}

[[noreturn]] void fail(const char *msg)
{
    throw faiss::FaissException(msg);
}

void require(bool cond, const char *msg)
{
    if (!cond)
        fail(msg);
}

faiss::Index *as_index(FaissIndex *p)
{
    return reinterpret_cast<faiss::Index *>(p);
}

const faiss::Index *as_index(const FaissIndex *p)
{
    return reinterpret_cast<const faiss::Index *>(p);
}

/* Only the metrics faiss::MetricType defines may be converted to it. */
faiss::MetricType to_metric(FaissMetricType m)
{
    switch (m) {
    case METRIC_INNER_PRODUCT: return faiss::METRIC_INNER_PRODUCT;
    case METRIC_L2: return faiss::METRIC_L2;
    case METRIC_L1: return faiss::METRIC_L1;
    case METRIC_Linf: return faiss::METRIC_Linf;
    case METRIC_Lp: return faiss::METRIC_Lp;
    case METRIC_Canberra: return faiss::METRIC_Canberra;
    case METRIC_BrayCurtis: return faiss::METRIC_BrayCurtis;
    case METRIC_JensenShannon: return faiss::METRIC_JensenShannon;
    }
    fail("faiss_index_factory: unknown metric type");
}

FaissMetricType from_metric(faiss::MetricType m)
{
    switch (m) {
    case faiss::METRIC_INNER_PRODUCT: return METRIC_INNER_PRODUCT;
    case faiss::METRIC_L2: return METRIC_L2;
    case faiss::METRIC_L1: return METRIC_L1;
    case faiss::METRIC_Linf: return METRIC_Linf;
    case faiss::METRIC_Lp: return METRIC_Lp;
    case faiss::METRIC_Canberra: return METRIC_Canberra;
    case faiss::METRIC_BrayCurtis: return METRIC_BrayCurtis;
    case faiss::METRIC_JensenShannon: return METRIC_JensenShannon;
    default: break;
    }
    return METRIC_L2;
}

} // namespace

extern "C" {

/* ---- errors ---------------------------------------------------------- */

const char *faiss_get_last_error()
{
    return has_last_error ? last_error.c_str() : nullptr;
}

/* ---- index factory --------------------------------------------------- */

int faiss_index_factory(FaissIndex **p_index, int d, const char *description,
                        FaissMetricType metric)
{
    return guarded([&] {
        require(p_index != nullptr, "faiss_index_factory: p_index is NULL");
        *p_index = nullptr;
        require(description != nullptr, "faiss_index_factory: description is NULL");
        require(d > 0, "faiss_index_factory: dimension must be positive");
        faiss::Index *ix = faiss::index_factory(d, description, to_metric(metric));
        *p_index = reinterpret_cast<FaissIndex *>(ix);
    });
}

/* ---- faiss::Index ---------------------------------------------------- */

void faiss_Index_free(FaissIndex *obj)
{
    delete as_index(obj);
}

int faiss_Index_d(const FaissIndex *obj)
{
    return static_cast<int>(as_index(obj)->d);
}

int faiss_Index_is_trained(const FaissIndex *obj)
{
    return as_index(obj)->is_trained ? 1 : 0;
}

idx_t faiss_Index_ntotal(const FaissIndex *obj)
{
    return as_index(obj)->ntotal;
}

FaissMetricType faiss_Index_metric_type(const FaissIndex *obj)
{
    return from_metric(as_index(obj)->metric_type);
}

int faiss_Index_train(FaissIndex *index, idx_t n, const float *x)
{
    return guarded([&] {
        require(index != nullptr, "faiss_Index_train: index is NULL");
        require(n >= 0 && (n == 0 || x != nullptr), "faiss_Index_train: bad vectors");
        as_index(index)->train(n, x);
    });
}

int faiss_Index_add(FaissIndex *index, idx_t n, const float *x)
{
    return guarded([&] {
        require(index != nullptr, "faiss_Index_add: index is NULL");
        require(n >= 0 && (n == 0 || x != nullptr), "faiss_Index_add: bad vectors");
        as_index(index)->add(n, x);
    });
}

int faiss_Index_add_with_ids(FaissIndex *index, idx_t n, const float *x,
                             const idx_t *xids)
{
    return guarded([&] {
        require(index != nullptr, "faiss_Index_add_with_ids: index is NULL");
        require(n >= 0 && (n == 0 || x != nullptr),
                "faiss_Index_add_with_ids: bad vectors");
        as_index(index)->add_with_ids(n, x, xids);
    });
}

int faiss_Index_search(const FaissIndex *index, idx_t n, const float *x, idx_t k,
                       float *distances, idx_t *labels)
{
    return guarded([&] {
        require(index != nullptr, "faiss_Index_search: index is NULL");
        require(n >= 0 && k >= 0, "faiss_Index_search: negative n or k");
        require(n == 0 || x != nullptr, "faiss_Index_search: queries are NULL");
        require(n == 0 || k == 0 || (distances != nullptr && labels != nullptr),
                "faiss_Index_search: result arrays are NULL");
        as_index(index)->search(n, x, k, distances, labels);
    });
}

int faiss_Index_reset(FaissIndex *index)
{
    return guarded([&] {
        require(index != nullptr, "faiss_Index_reset: index is NULL");
        as_index(index)->reset();
    });
}

int faiss_Index_remove_ids(FaissIndex *index, const FaissIDSelector *sel,
                           size_t *n_removed)
{
    return guarded([&] {
        require(index != nullptr, "faiss_Index_remove_ids: index is NULL");
        require(sel != nullptr, "faiss_Index_remove_ids: selector is NULL");
        size_t n = as_index(index)->remove_ids(
                *reinterpret_cast<const faiss::IDSelector *>(sel));
        if (n_removed)
            *n_removed = n;
    });
}

/* ---- ID selectors ---------------------------------------------------- */

void faiss_IDSelector_free(FaissIDSelector *obj)
{
    delete reinterpret_cast<faiss::IDSelector *>(obj);
}

int faiss_IDSelectorBatch_new(FaissIDSelectorBatch **p_sel, size_t n,
                              const idx_t *indices)
{
    return guarded([&] {
        require(p_sel != nullptr, "faiss_IDSelectorBatch_new: p_sel is NULL");
        *p_sel = nullptr;
        require(n == 0 || indices != nullptr,
                "faiss_IDSelectorBatch_new: indices are NULL");
        *p_sel = reinterpret_cast<FaissIDSelectorBatch *>(
                new faiss::IDSelectorBatch(n, indices));
    });
}

/* ---- I/O -------------------------------------------------------------- */

int faiss_write_index_fname(const FaissIndex *idx, const char *fname)
{
    return guarded([&] {
        require(idx != nullptr, "faiss_write_index_fname: index is NULL");
        require(fname != nullptr, "faiss_write_index_fname: fname is NULL");
        faiss::write_index(as_index(idx), fname);
    });
}

int faiss_read_index_fname(const char *fname, int io_flags, FaissIndex **p_out)
{
    return guarded([&] {
        require(p_out != nullptr, "faiss_read_index_fname: p_out is NULL");
        *p_out = nullptr;
        require(fname != nullptr, "faiss_read_index_fname: fname is NULL");
        faiss::Index *ix = faiss::read_index(fname, io_flags);
        *p_out = reinterpret_cast<FaissIndex *>(ix);
    });
}

/* ---- search-time parameters (efSearch, nprobe, ...) ------------------ */

void faiss_ParameterSpace_free(FaissParameterSpace *obj)
{
    delete reinterpret_cast<faiss::ParameterSpace *>(obj);
}

int faiss_ParameterSpace_new(FaissParameterSpace **space)
{
    return guarded([&] {
        require(space != nullptr, "faiss_ParameterSpace_new: space is NULL");
        *space = reinterpret_cast<FaissParameterSpace *>(new faiss::ParameterSpace());
    });
}

int faiss_ParameterSpace_set_index_parameter(const FaissParameterSpace *space,
                                             FaissIndex *index, const char *name,
                                             double value)
{
    return guarded([&] {
        require(space != nullptr, "faiss_ParameterSpace_set_index_parameter: space is NULL");
        require(index != nullptr, "faiss_ParameterSpace_set_index_parameter: index is NULL");
        require(name != nullptr, "faiss_ParameterSpace_set_index_parameter: name is NULL");
        reinterpret_cast<const faiss::ParameterSpace *>(space)->set_index_parameter(
                as_index(index), name, value);
    });
}

} // extern "C"
