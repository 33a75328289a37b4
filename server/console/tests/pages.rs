//! The console's handlers over a real store, access control and query engine: status, the
//! elements each page must show, escaping of hostile names and values, sessions, CSRF and
//! origin checks, authorization refusals, and clear errors for bad input.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use scraper::{Html, Selector};
use tower_service::Service;

use quiver_auth::Access;
use quiver_auth::store::{AuthStore, Target};
use quiver_console::Console;
use quiver_core::FeatureStore;
use quiver_core::group_commit::GroupCommit;
use quiver_lineage::Lineage;
use quiver_lineage::feature_groups::FeatureGroupLineage;
use quiver_net::Peer;
use quiver_query::{QueryEngine, QueryOptions};
use quiver_sagemaker::Api;
use quiver_storage::auth_records::AuthRecords;
use quiver_storage::lineage_records::LineageRecords;
use quiver_types::model::Value;
use quiver_types::model::arn::ArnContext;
use quiver_types::time::{Clock, SystemClock};

const HOSTILE: &str = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>";

struct Fixture {
    _dir: tempfile::TempDir,
    router: Router,
    store: Arc<FeatureStore>,
    access: Arc<Access>,
    /// (key id, secret) of `alice` (allowed everything) and `bob` (may list and search only).
    alice: (String, String),
    bob: (String, String),
}

fn fixture(auth: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = Arc::new(quiver_core::testing::open(dir.path(), clock.clone()));
    let arns = ArnContext {
        region: "us-east-1".into(),
        account_id: "000000000000".into(),
    };
    let auth_store = AuthStore::open(
        AuthRecords::new(store.online().db().clone()),
        store.online().data_keys().provider().clone(),
        clock.clone(),
        arns.account_id.clone(),
    )
    .unwrap();
    let mut keys = Vec::new();
    for (principal, policy) in [
        (
            "alice",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        ),
        (
            "bob",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["sagemaker:ListFeatureGroups","sagemaker:Search"],"Resource":"*"}]}"#,
        ),
    ] {
        auth_store.create_principal(principal).unwrap();
        auth_store.put_policy(principal, policy).unwrap();
        auth_store
            .attach_policy(Target::Principal(principal), principal)
            .unwrap();
        let (key, secret) = auth_store.create_access_key(principal).unwrap();
        keys.push((key.key_id, secret));
    }
    let lineage = Arc::new(
        Lineage::open(
            LineageRecords::new(store.online().db().clone(), false),
            arns.clone(),
            clock.clone(),
            100_000,
        )
        .unwrap(),
    );
    store.observe(Arc::new(FeatureGroupLineage(lineage.clone())));
    let access =
        Arc::new(Access::new(auth, Arc::new(auth_store), dir.path(), arns, clock).unwrap());

    // Group `g` (id, ts, v), online and offline, with hostile text where users write text.
    let mut spec = quiver_core::testing::spec(None, true);
    spec.description = Some(format!("customer features {HOSTILE}"));
    spec.tags = vec![("team".into(), "risk".into())];
    store.create_feature_group(spec).unwrap();
    store
        .update_feature_metadata("g", "v", Some(format!("a value {HOSTILE}")), vec![], vec![])
        .unwrap();
    let mut puts = Vec::new();
    for id in 1..=3 {
        let (g, mut put) = quiver_core::testing::put(id, 1_700_000_000_000 + id);
        put.record.retain(|(name, _)| name != "v");
        put.record
            .push(("v".into(), Value::String(format!("value {id} {HOSTILE}"))));
        puts.push((g, put));
    }
    store.put_records(puts).unwrap();

    let queries = Arc::new(
        QueryEngine::new(
            store.clone(),
            &QueryOptions {
                memory_bytes: 64 << 20,
                threads: 1,
                spill_dir: dir.path().join("tmp"),
            },
        )
        .unwrap(),
    );
    let api = Api {
        store: store.clone(),
        puts: GroupCommit::start(store.clone()).unwrap(),
        access: access.clone(),
        lineage: Some(lineage),
        ingests: None,
        automl: None,
    };
    let router = quiver_console::router(Console::new(api, queries));
    let mut keys = keys.into_iter();
    Fixture {
        _dir: dir,
        router,
        store,
        access,
        alice: keys.next().unwrap(),
        bob: keys.next().unwrap(),
    }
}

/// A browser: its cookie, the CSRF token of the last page, where it connects from.
struct Browser {
    router: Router,
    cookie: Option<String>,
    csrf: Option<String>,
    peer: Peer,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn html(&self) -> Html {
        Html::parse_document(&self.body)
    }

    /// The text of every element `selector` picks, in order.
    fn texts(&self, selector: &str) -> Vec<String> {
        let selector = Selector::parse(selector).unwrap();
        self.html()
            .select(&selector)
            .map(|e| e.text().collect::<String>().trim().to_string())
            .collect()
    }

    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Browser {
    fn new(fixture: &Fixture) -> Self {
        Self {
            router: fixture.router.clone(),
            cookie: None,
            csrf: None,
            peer: Peer {
                addr: Some("127.0.0.1:50000".parse().unwrap()),
                secure: false,
                certificate_name: None,
            },
        }
    }

    async fn send(&mut self, mut request: Request<Body>) -> Page {
        request
            .extensions_mut()
            .insert(ConnectInfo(self.peer.clone()));
        request
            .headers_mut()
            .insert(header::HOST, "localhost:8080".parse().unwrap());
        if let Some(cookie) = &self.cookie {
            request.headers_mut().insert(
                header::COOKIE,
                format!("quiver_console={cookie}").parse().unwrap(),
            );
        }
        let response = self.router.call(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        for set in parts.headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let value = set
                .strip_prefix("quiver_console=")
                .and_then(|v| v.split(';').next())
                .unwrap();
            self.cookie = (!value.is_empty()).then(|| value.to_string());
        }
        let page = Page {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        let token = Selector::parse("input[name=csrf]").unwrap();
        if let Some(input) = page.html().select(&token).next() {
            self.csrf = input.value().attr("value").map(str::to_string);
        }
        page
    }

    async fn get(&mut self, uri: &str) -> Page {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    async fn post(&mut self, uri: &str, form: &[(&str, &str)], extra: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ORIGIN, "http://localhost:8080")
            .body(Body::from(body))
            .unwrap();
        // Extra headers replace the defaults (a foreign Origin, say).
        for (k, v) in extra {
            let name = header::HeaderName::from_bytes(k.as_bytes()).unwrap();
            request.headers_mut().insert(name, v.parse().unwrap());
        }
        self.send(request).await
    }

    async fn sign_in(&mut self, (key, secret): &(String, String)) -> Page {
        self.post(
            "/console/sign-in",
            &[
                ("access_key_id", key.as_str()),
                ("secret_access_key", secret.as_str()),
                ("next", "/console/"),
            ],
            &[],
        )
        .await
    }
}

#[tokio::test]
async fn without_auth_every_page_renders_what_the_store_holds() {
    let fixture = fixture(false);
    let mut browser = Browser::new(&fixture);

    let home = browser.get("/console/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    let cookie = home
        .headers
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let policy = home.headers.get(header::CONTENT_SECURITY_POLICY).unwrap();
    assert!(policy.to_str().unwrap().contains("script-src 'self'"));
    assert_eq!(home.texts("h1"), ["Feature store"]);
    assert_eq!(home.texts("table tbody td a"), ["g"]);
    assert!(home.texts(".card .value").contains(&"Healthy".to_string()));
    // The session goes on: no second cookie.
    let again = browser.get("/console/").await;
    assert!(again.headers.get(header::SET_COOKIE).is_none());

    let catalog = browser
        .get("/console/catalog?kind=groups&q=g&label=team%3Drisk")
        .await;
    assert_eq!(catalog.status, StatusCode::OK, "{}", catalog.body);
    assert_eq!(catalog.texts("table tbody td a"), ["g"]);
    assert!(catalog.texts("[role=status]")[0].starts_with("1 match"));
    let none = browser
        .get("/console/catalog?kind=groups&label=team%3Dother")
        .await;
    assert!(none.texts("[role=status]")[0].starts_with("0 matches"));
    let features = browser
        .get("/console/catalog?kind=features&field=description&q=a+value")
        .await;
    assert_eq!(features.texts("table tbody td code"), ["v"]);

    let group = browser.get("/console/groups/g").await;
    assert_eq!(group.status, StatusCode::OK, "{}", group.body);
    assert_eq!(group.texts("h1"), ["g"]);
    assert_eq!(
        group.texts("table tbody td:first-child code"),
        ["id", "ts", "v"]
    );
    let settings = group.texts("dl.settings dd").join(" | ");
    assert!(
        settings.contains("arn:aws:sagemaker:us-east-1:000000000000:feature-group/g"),
        "{settings}"
    );
    assert!(settings.contains("team=risk"), "{settings}");

    let record = browser.get("/console/groups/g/record?id=2").await;
    assert_eq!(record.status, StatusCode::OK, "{}", record.body);
    let cells = record.texts("table tbody td");
    assert_eq!(cells[0..2], ["id", "2"]);
    assert_eq!(cells[5], format!("value 2 {HOSTILE}"));
    let stats = browser.get("/console/groups/g/statistics").await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    let summary = &stats.texts("[role=status]")[0];
    assert!(
        summary.starts_with("3 rows in the offline store · latest event time 2023-11-14T22:13:20"),
        "{summary}"
    );
    let id_row = stats.texts("tbody tr:first-child td");
    assert_eq!(id_row[..7], ["id", "100.0%", "3", "1", "3", "2", "1"]);
    let bars = Selector::parse("tbody tr:first-child svg rect").unwrap();
    assert_eq!(
        stats.html().select(&bars).count(),
        20,
        "a 20-bin histogram of id"
    );
    let v_row = stats.texts("tbody tr:nth-child(3) td");
    assert_eq!(v_row[..3], ["v", "100.0%", "3"]);
    assert!(
        group
            .body
            .contains("hx-get=\"/console/groups/g/statistics\""),
        "the page loads them"
    );
    let missing = browser.get("/console/groups/g/record?id=99").await;
    assert!(missing.texts("[role=status]")[0].starts_with("No record 99"));

    let query = browser
        .get("/console/query?sql=SELECT+id%2C+v+FROM+%22g%22+ORDER+BY+id")
        .await;
    assert_eq!(query.status, StatusCode::OK, "{}", query.body);
    assert_eq!(query.texts("thead th"), ["id", "v"]);
    assert_eq!(query.texts("tbody tr td:first-child"), ["1", "2", "3"]);
    assert!(query.texts("[role=status]")[0].starts_with("Rows 1–3"));

    let csv = browser
        .get("/console/query/download?format=csv&sql=SELECT+id+FROM+%22g%22+ORDER+BY+id")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("query.csv")
    );
    assert_eq!(csv.body, "id\n1\n2\n3\n");
    let empty = browser
        .get("/console/query/download?format=csv&sql=SELECT+id+FROM+%22g%22+WHERE+id+%3E+9")
        .await;
    assert_eq!(
        empty.body, "id\n",
        "a result with no rows still has its header"
    );
}

#[tokio::test]
async fn results_are_paged_and_downloaded_whole_as_parquet() {
    let fixture = fixture(false);
    let mut browser = Browser::new(&fixture);
    let puts = (4..=250)
        .map(|id| quiver_core::testing::put(id, 1_700_000_000_000 + id))
        .collect();
    fixture.store.put_records(puts).unwrap();
    let sql = "SELECT%20id%20FROM%20%22g%22%20ORDER%20BY%20id";
    let first = browser.get(&format!("/console/query?sql={sql}")).await;
    assert_eq!(first.texts("tbody tr").len(), 100);
    assert!(first.texts(".pager a").contains(&"Next".to_string()));
    let last = browser
        .get(&format!("/console/query?sql={sql}&page=2"))
        .await;
    assert_eq!(
        last.texts("tbody tr td"),
        (201..=250).map(|n| n.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(last.texts(".pager a"), ["Previous"]);

    let mut request = Request::get(format!("/console/query/download?format=parquet&sql={sql}"))
        .body(Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(browser.peer.clone()));
    let response = browser.router.call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 250);
}

#[tokio::test]
async fn hostile_names_and_values_are_escaped_everywhere() {
    let fixture = fixture(false);
    let mut browser = Browser::new(&fixture);
    for uri in [
        "/console/",
        "/console/catalog?kind=groups",
        "/console/catalog?kind=features",
        "/console/groups/g",
        "/console/groups/g/record?id=1",
        "/console/query?sql=SELECT+v+FROM+%22g%22",
        "/console/catalog?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    ] {
        let page = browser.get(uri).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}: {}", page.body);
        assert!(
            !page.body.contains("<script>alert"),
            "{uri} shows a script unescaped"
        );
        assert!(
            !page.body.contains("<img src=x"),
            "{uri} shows an element unescaped"
        );
        // The only scripts are the console's own.
        let scripts = Selector::parse("script").unwrap();
        for script in page.html().select(&scripts) {
            let src = script.value().attr("src").unwrap_or("inline");
            assert!(src.starts_with("/console/static/"), "{uri} runs {src}");
        }
    }
    let group = browser.get("/console/groups/g").await;
    assert!(group.texts("p.lead")[0].contains(HOSTILE), "shown as text");
}

#[tokio::test]
async fn with_auth_pages_need_sign_in_and_policies_decide() {
    let fixture = fixture(true);
    let mut browser = Browser::new(&fixture);
    let away = browser.get("/console/groups/g").await;
    assert_eq!(away.status, StatusCode::SEE_OTHER);
    assert_eq!(
        away.location(),
        "/console/sign-in?next=%2Fconsole%2Fgroups%2Fg"
    );
    assert!(
        away.headers.get(header::SET_COOKIE).is_none(),
        "no session before sign-in"
    );
    let form = browser.get("/console/sign-in").await;
    assert_eq!(form.status, StatusCode::OK);
    assert_eq!(form.texts("label"), ["Access key ID", "Secret access key"]);

    let wrong = browser
        .sign_in(&(fixture.alice.0.clone(), "not-the-secret".into()))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.texts("[role=alert]")[0].starts_with("Sign-in failed"));
    assert!(browser.cookie.is_none());

    let signed_in = browser.sign_in(&fixture.alice).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert_eq!(signed_in.location(), "/console/");
    let home = browser.get("/console/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert_eq!(home.texts(".principal"), ["alice"]);
    assert_eq!(
        browser.get("/console/groups/g").await.status,
        StatusCode::OK
    );
    let audit = std::fs::read_to_string(fixture.access.audit_log().path()).unwrap();
    assert!(audit.contains("console:SignIn"), "{audit}");

    // Bob may list and search, nothing else: the pages say so, naming the action.
    let mut bob = Browser::new(&fixture);
    bob.sign_in(&fixture.bob).await;
    assert_eq!(bob.get("/console/").await.status, StatusCode::OK);
    assert_eq!(bob.get("/console/catalog?q=g").await.status, StatusCode::OK);
    let group = bob.get("/console/groups/g").await;
    assert_eq!(group.status, StatusCode::FORBIDDEN);
    assert!(
        group.texts("[role=alert]")[0]
            .contains("not authorized to perform sagemaker:DescribeFeatureGroup"),
        "{}",
        group.body
    );
    let record = bob.get("/console/groups/g/record?id=1").await;
    assert_eq!(record.status, StatusCode::FORBIDDEN);
    let query = bob.get("/console/query?sql=SELECT+*+FROM+%22g%22").await;
    assert_eq!(query.status, StatusCode::FORBIDDEN);
    assert!(query.texts("[role=alert]")[0].contains("quiver:Query"));
    let download = bob
        .get("/console/query/download?format=csv&sql=SELECT+*+FROM+%22g%22")
        .await;
    assert_eq!(download.status, StatusCode::FORBIDDEN);
    assert!(!download.body.contains("value 1"));
    let lineage = bob.get("/console/lineage?start=g").await;
    assert_eq!(lineage.status, StatusCode::FORBIDDEN);
    assert!(
        lineage.body.contains("sagemaker:QueryLineage"),
        "{}",
        lineage.body
    );

    // Signing out ends the session.
    let csrf = browser.csrf.clone().unwrap();
    let out = browser
        .post("/console/sign-out", &[("csrf", csrf.as_str())], &[])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(browser.cookie.is_none(), "the cookie is cleared");
    assert_eq!(browser.get("/console/").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn forms_need_the_sessions_token_and_this_servers_origin() {
    let fixture = fixture(true);
    let mut browser = Browser::new(&fixture);
    browser.sign_in(&fixture.alice).await;
    browser.get("/console/groups/g").await;
    let csrf = browser
        .csrf
        .clone()
        .expect("the page's forms carry the token");
    let path = "/console/groups/g/features/v";
    let description = |f: &Fixture| {
        f.store.describe_feature_group("g").unwrap().features[2]
            .description
            .clone()
    };

    let forged = browser.post(path, &[("description", "forged")], &[]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(forged.texts("h1"), ["Form expired"]);
    let wrong = browser
        .post(path, &[("description", "forged"), ("csrf", "00")], &[])
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let elsewhere = browser
        .post(
            path,
            &[("description", "forged"), ("csrf", csrf.as_str())],
            &[("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    assert!(
        description(&fixture).starts_with("a value"),
        "nothing changed"
    );

    let saved = browser
        .post(
            path,
            &[
                ("description", "spend in the last 30 days"),
                ("csrf", csrf.as_str()),
            ],
            &[],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(description(&fixture), "spend in the last 30 days");
    // htmx sends the token as a header and swaps the form for the answer.
    let swapped = browser
        .post(
            path,
            &[("description", "by htmx")],
            &[("hx-request", "true"), ("x-quiver-csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(swapped.status, StatusCode::OK);
    assert_eq!(swapped.texts("[role=status]"), ["Saved"]);
    assert_eq!(description(&fixture), "by htmx");
    let too_long = "x".repeat(300);
    let refused = browser
        .post(
            path,
            &[("description", too_long.as_str())],
            &[("hx-request", "true"), ("x-quiver-csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.texts("[role=alert]")[0].contains("Description"),
        "{}",
        refused.body
    );
    assert_eq!(description(&fixture), "by htmx");
    let audit = std::fs::read_to_string(fixture.access.audit_log().path()).unwrap();
    assert!(audit.contains("console:UpdateFeatureMetadata"), "{audit}");
}

#[tokio::test]
async fn the_lineage_explorer_walks_from_a_feature_group() {
    let fixture = fixture(false);
    let mut browser = Browser::new(&fixture);
    let start = browser.get("/console/lineage").await;
    assert_eq!(start.status, StatusCode::OK);
    assert_eq!(start.texts("ul.columns a"), ["g"], "groups to start from");

    // Group g's three contexts: its own, its pipeline's and the pipeline version's.
    let page = browser
        .get("/console/lineage?start=g&direction=Both&depth=3")
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.texts("[role=status]")[0].starts_with("3 entities, 2 associations"));
    let types: Vec<String> = page.texts("table tbody tr td:nth-child(2)");
    assert!(types.contains(&"FeatureGroup".to_string()), "{types:?}");
    assert!(
        types.contains(&"FeatureGroupPipeline".to_string()),
        "{types:?}"
    );
    let graph = Selector::parse("#graph").unwrap();
    let src = page
        .html()
        .select(&graph)
        .next()
        .unwrap()
        .value()
        .attr("data-src")
        .unwrap()
        .to_string();
    assert!(
        src.starts_with("/console/lineage/graph.json?start=g"),
        "{src}"
    );
    let scripts = Selector::parse("script").unwrap();
    let loaded: Vec<String> = page
        .html()
        .select(&scripts)
        .filter_map(|s| s.value().attr("src").map(str::to_string))
        .collect();
    assert!(
        loaded.iter().any(|s| s.contains("cytoscape-3.35.0")),
        "{loaded:?}"
    );

    let json = browser.get(&src).await;
    assert_eq!(json.status, StatusCode::OK, "{}", json.body);
    let json: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(json["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(json["edges"].as_array().unwrap().len(), 2);
    let start_node = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["start"] == true)
        .unwrap();
    assert!(
        start_node["label"]
            .as_str()
            .unwrap()
            .starts_with("FeatureGroup\ng-"),
        "{start_node}"
    );

    // Only contexts of type FeatureGroup: one vertex; no edge is drawn to what is filtered out.
    let json = browser
        .get("/console/lineage/graph.json?start=g&types=FeatureGroup")
        .await;
    let json: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(json["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(json["edges"].as_array().unwrap().len(), 0);

    // An entity's page, and the way back to the group.
    let href = start_node["href"].as_str().unwrap().to_string();
    let entity = browser.get(&href).await;
    assert_eq!(entity.status, StatusCode::OK, "{}", entity.body);
    assert!(
        entity
            .texts("dl.settings dd")
            .contains(&"FeatureGroup".to_string())
    );
    let links = Selector::parse("a.button").unwrap();
    let targets: Vec<String> = entity
        .html()
        .select(&links)
        .filter_map(|a| a.value().attr("href").map(str::to_string))
        .collect();
    assert!(
        targets.contains(&"/console/groups/g".to_string()),
        "{targets:?}"
    );

    for (uri, status, says) in [
        (
            "/console/lineage?start=nope",
            StatusCode::NOT_FOUND,
            "neither an ARN nor the name of a feature group",
        ),
        (
            "/console/lineage?start=g&depth=12",
            StatusCode::BAD_REQUEST,
            "depth: 12 is not between 0 and 10",
        ),
        (
            "/console/lineage/entity?arn=x",
            StatusCode::BAD_REQUEST,
            "is not the ARN of a lineage entity",
        ),
    ] {
        let page = browser.get(uri).await;
        assert_eq!(page.status, status, "{uri}: {}", page.body);
        assert!(page.body.contains(says), "{uri}: {}", page.body);
    }
}

#[tokio::test]
async fn plaintext_from_another_machine_is_refused() {
    let fixture = fixture(false);
    let mut browser = Browser::new(&fixture);
    browser.peer.addr = Some("10.1.2.3:40000".parse::<SocketAddr>().unwrap());
    let page = browser.get("/console/").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(page.texts("h1"), ["The console needs TLS"]);
    assert!(browser.cookie.is_none());
    browser.peer.secure = true;
    let page = browser.get("/console/").await;
    assert_eq!(page.status, StatusCode::OK);
    let cookie = page
        .headers
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
}

#[tokio::test]
async fn bad_input_gets_an_error_naming_what_to_fix() {
    let fixture = fixture(false);
    let mut browser = Browser::new(&fixture);
    let cases = [
        (
            "/console/query?sql=SELEC+1",
            StatusCode::BAD_REQUEST,
            "SQL:",
        ),
        (
            "/console/query?sql=SELECT+*+FROM+nothing_here",
            StatusCode::BAD_REQUEST,
            "nothing_here",
        ),
        (
            "/console/query/download?format=xlsx&sql=SELECT+1",
            StatusCode::BAD_REQUEST,
            "format: \"xlsx\" is not csv or parquet",
        ),
        (
            "/console/query/download?format=csv&sql=",
            StatusCode::BAD_REQUEST,
            "sql: enter a statement",
        ),
        (
            "/console/groups/g/record?id=",
            StatusCode::BAD_REQUEST,
            "id: enter the record identifier",
        ),
        (
            "/console/groups/g/record?id=abc",
            StatusCode::BAD_REQUEST,
            "abc",
        ),
        ("/console/groups/nope", StatusCode::NOT_FOUND, "nope"),
        (
            "/console/catalog?label=%3Dx",
            StatusCode::BAD_REQUEST,
            "has no key",
        ),
        (
            "/console/no-such-page",
            StatusCode::NOT_FOUND,
            "no console page here",
        ),
    ];
    for (uri, status, says) in cases {
        let page = browser.get(uri).await;
        assert_eq!(page.status, status, "{uri}: {}", page.body);
        assert!(
            page.body.contains(&says.replace('"', "&quot;")) || page.body.contains(says),
            "{uri}: {}",
            page.body
        );
    }
}
