//! The gateway's OpenAPI 3 description (`GET /openapi.json`) and interactive docs
//! (`GET /docs`, Swagger UI).
//!
//! Swagger UI's assets are compiled into the binary (utoipa-swagger-ui's `vendored` feature)
//! and served by the gateway itself, so the docs work on a machine without internet access.

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as OpenApiDoc, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::handlers::{functions, results, service, tasks};
use super::metrics;
use crate::api::ErrorBody;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Where Swagger UI is served.
pub const DOCS_PATH: &str = "/docs";

/// The name of the bearer security scheme in the document.
const BEARER: &str = "bearer";

const DESCRIPTION: &str = "\
Function-as-a-Service: register a Python function serialized with `dill`, execute it many \
times with serialized arguments, and fetch each task's status and result.

Every `payload` and `result` is base64 of a dill pickle (`codecs.encode(dill.dumps(x), \
\"base64\")`): a function for `/register_function`, an `((args...), {kwargs})` tuple for \
`/execute_function`, the return value (or the raised exception for a FAILED task) in results.

A task moves `QUEUED` → `RUNNING` → `COMPLETED` | `FAILED`.

Every error is answered with a JSON body `{\"error\": \"...\"}`. When the gateway is started \
with a token, every request needs `Authorization: Bearer <token>` (401 otherwise); 503 means \
Redis is unavailable and the request may be retried.";

/// The gateway's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "FaaS gateway API", description = DESCRIPTION),
    paths(
        functions::register_function,
        functions::delete_function,
        tasks::execute_function,
        tasks::execute_batch,
        tasks::status,
        tasks::result,
        results::results,
        tasks::task,
        tasks::cancel,
        service::health,
        metrics::render,
    ),
    components(schemas(ErrorBody)),
    modifiers(&CommonResponses),
    // No requirement (`()`) when the gateway runs without a token, the bearer token when it has one.
    security((), ("bearer" = [])),
    tags(
        (name = "functions", description = "Registering serialized Python functions."),
        (name = "tasks", description = "Executing functions and following the tasks."),
        (name = "service", description = "The gateway itself."),
    ),
)]
pub struct ApiDoc;

/// Adds what every operation shares: the bearer security scheme and the 401, 500 and 503
/// answers (each a reusable response with the error body).
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let shared = [
            (
                "401",
                "Unauthorized",
                "The gateway requires `Authorization: Bearer <token>` and the request has none, or a wrong one.",
            ),
            (
                "500",
                "Internal",
                "A bug or corrupt data in the store (logged by the gateway).",
            ),
            (
                "503",
                "Unavailable",
                "The task store (Redis) is unavailable; retry shortly.",
            ),
        ];
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Needed only when the gateway is started with a token \
                         (`FAAS_AUTH_TOKEN`); every endpoint then answers 401 without it.",
                    ))
                    .build(),
            ),
        );
        for (_, name, description) in shared {
            let response = ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build();
            components
                .responses
                .insert(name.to_owned(), RefOr::T(response));
        }
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, name, _) in shared {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
}

/// `GET /openapi.json` and Swagger UI at `GET /docs` (its assets under `/docs/`).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    // No online validator: the page makes no request beyond this gateway.
    let config = Config::new([OPENAPI_PATH]).validator_url("none");
    SwaggerUi::new(DOCS_PATH)
        .url(OPENAPI_PATH, ApiDoc::openapi())
        .config(config)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_openapi_3_with_every_operation_answering_the_shared_errors() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("serializes");
        assert!(doc["openapi"].as_str().unwrap().starts_with('3'));
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.len() >= 9, "{paths:?}");
        for (path, item) in paths {
            for (method, operation) in item.as_object().unwrap() {
                for status in ["401", "500", "503"] {
                    assert!(
                        operation["responses"].get(status).is_some(),
                        "{method} {path} lacks {status}"
                    );
                }
            }
        }
        assert_eq!(
            doc["components"]["securitySchemes"][BEARER]["scheme"],
            "bearer"
        );
        assert_eq!(
            doc["components"]["schemas"]["TaskStatus"]["enum"],
            serde_json::json!(["QUEUED", "RUNNING", "COMPLETED", "FAILED"])
        );
    }
}
