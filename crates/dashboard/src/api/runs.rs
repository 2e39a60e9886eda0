//! Re-scoring runs (`nta rescore`), read and deleted through `store::runs`: the list, one run
//! with its comparison with the live alerts of its range, its alerts, delete.

use super::*;

fn run_name(name: &str) -> ApiResult<&str> {
    store::runs::validate_name(name).map_err(ApiError::bad)?;
    Ok(name)
}

fn no_run(name: &str) -> ApiError {
    ApiError::NotFound(format!("run {name:?} not found"))
}

/// `GET /api/runs`: every run, newest first.
pub async fn runs(State(state): State<AppState>) -> JsonResult {
    let r = async {
        let c = db(&state).await?;
        Ok(json!({"runs": store::runs::list_runs(&**c).await?}))
    }
    .await;
    or_empty(r, json!({"runs": []}))
}

/// `GET /api/runs/{name}`: the run and its comparison with the live alerts.
pub async fn run_detail(State(state): State<AppState>, Path(name): Path<String>) -> JsonResult {
    let name = run_name(&name)?;
    let c = db(&state).await?;
    let Some(run) = store::runs::get_run(&**c, name).await? else { return Err(no_run(name)) };
    let comparison = store::runs::comparison(&**c, name).await?.ok_or_else(|| no_run(name))?;
    Ok(Json(json!({"run": run, "comparison": comparison})))
}

/// `GET /api/runs/{name}/alerts`: the run's alerts in order; `limit` (1..=1000), `offset`.
pub async fn run_alerts(State(state): State<AppState>, Path(name): Path<String>, Query(q): Q) -> JsonResult {
    let name = run_name(&name)?;
    let p = Params(q);
    let limit = p.int("limit", 200, 1, 1000)?;
    let offset = p.int("offset", 0, 0, 10_000_000)?;
    let c = db(&state).await?;
    if store::runs::get_run(&**c, name).await?.is_none() {
        return Err(no_run(name));
    }
    let (alerts, total) = store::runs::run_alerts(&**c, name, limit, offset).await?;
    Ok(Json(json!({"run": name, "alerts": alerts, "total": total, "limit": limit, "offset": offset})))
}

/// `DELETE /api/runs/{name}`: the run and everything it wrote (CSRF-checked like every POST).
pub async fn delete_run(State(state): State<AppState>, Path(name): Path<String>) -> JsonResult {
    let name = run_name(&name)?;
    let c = db(&state).await?;
    if !store::runs::delete_run(&**c, name).await? {
        return Err(no_run(name));
    }
    Ok(Json(json!({"status": "deleted", "run": name})))
}
