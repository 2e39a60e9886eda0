//! Host drill-down: windows, labels, peers, ports and alerts of one address.

use super::*;
/// `GET /api/hosts/{ip}`: windows over time with their verdicts (5 s windows up to 1 h, 30 s
/// up to 6 h, 3 min beyond), peers, ports, TLS server names and alerts of one address.
pub async fn host(State(state): State<AppState>, Path(ip): Path<String>, Query(q): Q) -> JsonResult {
    let addr: std::net::IpAddr =
        ip.parse().map_err(|_| ApiError::bad(format!("not an IPv4 or IPv6 address: {ip:?}")))?;
    let p = Params(q);
    let range = p.time_range(DEFAULT_RANGE)?;
    let size: i32 = if range.seconds() <= 3600.0 {
        5
    } else if range.seconds() <= 6.0 * 3600.0 {
        30
    } else {
        180
    };
    let key = addr.to_string();
    let c = db(&state).await?;
    let mut notes = Vec::new();
    let windows = windows_or_missing(
        c.query(
            "SELECT w.view, extract(epoch from w.window_start)::float8 AS window_start, w.window_size, \
                    w.packet_count, w.byte_count, w.packet_rate_pps, w.byte_rate_bps, w.unique_dst_ips, \
                    w.unique_dst_ports, w.tcp_syn_count, w.dns_query_count, p.label, p.confidence \
             FROM window_features w \
             LEFT JOIN LATERAL (SELECT label, confidence FROM predictions p WHERE p.view = w.view AND p.key = w.key \
                  AND p.window_start = w.window_start AND p.window_size = w.window_size \
                  ORDER BY predicted_at DESC LIMIT 1) p ON true \
             WHERE w.window_size = $1 AND w.key = $2 AND w.window_start >= to_timestamp($3) \
               AND w.window_start < to_timestamp($4) ORDER BY w.window_start, w.view LIMIT 4000",
            &[&size, &key, &range.from, &range.to],
        )
        .await,
    );
    // predictions may be missing while window_features exists: retry without the verdicts.
    let windows = match windows {
        Err(ApiError::MissingTable(m)) if m.contains("predictions") => section_rows(
            c.query(
                "SELECT w.view, extract(epoch from w.window_start)::float8 AS window_start, w.window_size, \
                        w.packet_count, w.byte_count, w.packet_rate_pps, w.byte_rate_bps, w.unique_dst_ips, \
                        w.unique_dst_ports, w.tcp_syn_count, w.dns_query_count, NULL::text AS label, NULL::float8 AS confidence \
                 FROM window_features w WHERE w.window_size = $1 AND w.key = $2 AND w.window_start >= to_timestamp($3) \
                   AND w.window_start < to_timestamp($4) ORDER BY w.window_start, w.view LIMIT 4000",
                &[&size, &key, &range.from, &range.to],
            )
            .await,
            &mut notes,
        ),
        Err(ApiError::MissingTable(m)) => {
            notes.push(m);
            Ok(Vec::new())
        }
        other => other,
    }?;
    // Peers and ports both ways: (selected column, the host's side, the other side's filter).
    let tr = "ts >= to_timestamp($2) AND ts < to_timestamp($3)";
    let peer = "host({}) AS peer, count(*)::int8 AS packets, sum(length)::int8 AS bytes";
    let port = "dst_port AS port, protocol, count(*)::int8 AS packets";
    // TLS server names of the ClientHellos it sent (the services it reached, as ntopng lists
    // them) and of those sent to it (the names it is asked for).
    let sni = "tls_sni AS sni, count(*)::int8 AS packets";
    let sni_tail = "tls_sni IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 25";
    let mut sections = Vec::with_capacity(6);
    for (select, side, tail) in [
        (peer.replace("{}", "dst_ip"), "src_ip", "dst_ip IS NOT NULL GROUP BY dst_ip ORDER BY 2 DESC LIMIT 25"),
        (peer.replace("{}", "src_ip"), "dst_ip", "src_ip IS NOT NULL GROUP BY src_ip ORDER BY 2 DESC LIMIT 25"),
        (port.to_string(), "src_ip", "dst_port IS NOT NULL GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT 25"),
        (port.to_string(), "dst_ip", "dst_port IS NOT NULL GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT 25"),
        (sni.to_string(), "src_ip", sni_tail),
        (sni.to_string(), "dst_ip", sni_tail),
    ] {
        let sql = format!("SELECT {select} FROM raw_packets WHERE {side} = $1 AND {tr} AND {tail}");
        sections.push(section_rows(c.query(&sql, &[&addr, &range.from, &range.to]).await, &mut notes)?);
    }
    let [peers_out, peers_in, ports_contacted, ports_served, sni_requested, sni_served]: [Vec<Value>; 6] =
        sections.try_into().expect("six sections");
    let with_service = |v: Vec<Value>| -> Vec<Value> {
        v.into_iter()
            .map(|mut o| {
                let port = o["port"].as_i64().unwrap_or(0);
                o["service"] = json!(service_name(port));
                o
            })
            .collect()
    };
    let alerts = section_rows(
        c.query(&format!("SELECT {ALERT_COLS} FROM alerts WHERE key = $1 ORDER BY last_seen DESC LIMIT 100"), &[&key])
            .await,
        &mut notes,
    )?;
    let sum = |v: &Vec<Value>, f: &str| v.iter().map(|x| x[f].as_i64().unwrap_or(0)).sum::<i64>();
    Ok(Json(json!({
        "ip": key, "range": range.json(), "window_size": size, "windows": windows,
        "totals": {
            "packets_sent_top_peers": sum(&peers_out, "packets"),
            "packets_received_top_peers": sum(&peers_in, "packets"),
        },
        "peers": {"sent_to": peers_out, "received_from": peers_in},
        "ports": {"contacted": with_service(ports_contacted), "served": with_service(ports_served)},
        "server_names": {"requested": sni_requested, "served": sni_served},
        "alerts": alerts, "notes": notes,
    })))
}

fn windows_or_missing(r: Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>) -> ApiResult<Vec<Value>> {
    r.map(|rows| rows_json(&rows)).map_err(ApiError::from)
}

/// Rows as JSON, or none (with a note) when a table is missing.
fn section_rows(
    r: Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>,
    notes: &mut Vec<String>,
) -> ApiResult<Vec<Value>> {
    match r {
        Ok(rows) => Ok(rows_json(&rows)),
        Err(e) => match ApiError::from(e) {
            ApiError::MissingTable(m) => {
                notes.push(m);
                Ok(Vec::new())
            }
            e => Err(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_injection() {
        assert_eq!(csv_cell(&json!("=HYPERLINK(\"x\")")), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell(&json!("+1")), "\"'+1\"");
        assert_eq!(csv_cell(&json!("-cmd")), "\"'-cmd\"");
        assert_eq!(csv_cell(&json!("@SUM(A1)")), "\"'@SUM(A1)\"");
        assert_eq!(csv_cell(&json!("example.com")), "\"example.com\"");
        assert_eq!(csv_cell(&json!(443)), "\"443\"");
        assert_eq!(csv_cell(&Value::Null), "\"\"");
    }

    #[test]
    fn buckets() {
        assert_eq!(bucket_seconds(900.0, 5), 5);
        assert_eq!(bucket_seconds(3600.0, 5), 15);
        assert_eq!(bucket_seconds(86400.0, 5), 300);
        assert_eq!(service_name(22), "SSH");
        assert_eq!(service_name(12345), "Unknown");
    }
}
